"""Corpus mining (`curate.mine`): how well the fastText page classifier tells math pages from
general web pages, and how fast it trains and scores on this machine.

``--part quality``: for each seed (default 0..4) the math pages (math.SE + MathOverflow) and
the general pages (C4, a 2019 Common Crawl WARC, CCNet, DCLM) are split 50/50 into train and
held-out halves, stratified by site / source file and seeded. A classifier is trained on the
train halves (math = positives, general = negatives) with each setting:

(a) DeepSeekMath's defaults, ``FastTextOptions()`` (dim 256, lr 0.1, wordNgrams 3, minCount 3,
    epoch 3, bucket 2M);
(b) a small-corpus setting, ``FastTextOptions(epoch=25)``;
(c) ``FastTextOptions(epoch=25, dim=64, bucket=200_000)`` (the tests' setting, fast);

each with ``seed=`` the split's seed. It then scores the held-out math and general pages and
every math-adjacent page (physics, cstheory, proofassistants Stack Exchange). Reported per
setting, mean ± sample std over seeds: training seconds; ROC AUC (math vs general, from all
pairs, ties counted half); precision, recall and false-positive rate (share of general pages
kept) at the default cut-off 0.5; the highest cut-off with recall >= 0.95 and the precision
there (the issue's target: P and R >= 0.95 at the default cut-off); the share of each
math-adjacent site scoring >= 0.5 and its median score; for the first seed, the 5 general
pages that score highest. Precision is at the held-out ratio (about 325 math : 550 general); in
a real pool, where math is rare, it is lower at the same false-positive rate.

``--part speed``: a classifier trained with DeepSeekMath's defaults on all math and general
pages scores ``--pages`` pages (default 100,000: every web_corpus page, cycled) with
``Classifier.scores`` in batches of 16,384 (as the ``ClassifierScore`` stage does): pages/s and
MB/s of text (UTF-8); and so does one trained with setting (c), dim 64 (fastText's predict
costs grow with dim). Then real runs, ``Recipe([read(pool, kind="documents")],
[ClassifierScore(model), KeepTop(share=0.1)]).run(tmp)``, on pools of ``--run-sizes`` pages
(default 100,000 and 300,000): pages/s end to end (ingest, scoring, ranking, Parquet), per
stage seconds, and peak RSS, to show whether memory grows with the pool. Then training with
DeepSeekMath's defaults on ``--train-pages`` pages (half math, half general, cycled; default
10,000 to keep the run short; ``--train-pages 100000`` for the real thing) with 1 and 2
threads: seconds, seconds per 100K pages (linear), tokens/s and peak RSS (bucket 2M x dim 256
is a 2 GB matrix). Every measurement runs in a fresh subprocess; peak RSS is its VmHWM.

Each part records the machine (cores, CPU model), the UTC date and the load averages at its
start and end (the machine may be shared; a load above the core count slows every number).

Run from the repository root; data are read from ../shared/data (``--data``), and models,
pools and runs go to a temporary directory that is removed at the end. At the defaults it
takes about 15 minutes on 2 busy cores (quality about 4, speed about 11); ``--pages 0`` and
``--run-sizes ""`` skip the scoring and the runs (to time a 100K training alone)::

    .venv/bin/python benchmarks/bench_mine.py [--part quality|speed|all] [--seeds 0,1,2,3,4]
        [--settings a,b,c] [--pages 100000] [--run-sizes 100000,300000]
        [--train-pages 10000] [--threads 1,2] [--json results.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MATH = "math_stackexchange_mathoverflow.jsonl"
ADJACENT = "mathadjacent_physics_cstheory_proofassistants_se.jsonl"
GENERAL = (
    "nonmath_c4_olmo.jsonl",
    "nonmath_ccwarc2019_dolma.jsonl",
    "nonmath_ccnet_dolma.jsonl",
    "nonmath_dclm_quality_nourl.jsonl",
)
SITES = ("physics", "cstheory", "proofassistants")
SETTINGS = {
    "a": ("DeepSeekMath defaults", {}),
    "b": ("epoch 25", {"epoch": 25}),
    "c": ("epoch 25, dim 64, bucket 200K", {"epoch": 25, "dim": 64, "bucket": 200_000}),
}
BATCH = 16_384  # ClassifierScore.batch_rows


# ---- data and machine -------------------------------------------------------------------


def load(data: Path, name: str) -> list[dict[str, Any]]:
    rows = []
    with open(data / "web_corpus" / name, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("text"):
                rows.append({"id": r["id"], "url": r.get("url"), "text": r["text"], "file": name})
    return rows


def host(url: str | None) -> str:
    from curate.mine import domain

    return domain(url) or ""


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "fasttext": version("fasttext-numpy2-wheel"),
        "numpy": version("numpy"),
        "polars": version("polars"),
    }


def moment() -> dict[str, Any]:
    """The UTC time and the 1, 5 and 15-minute load averages."""
    return {
        "utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def show_moment(label: str, m: dict[str, Any]) -> None:
    cores = os.cpu_count() or 1
    busy = " (load above the core count: the machine is shared and busy)" * (m["load"][0] > cores)
    print(f"{label}: {m['utc']} UTC, load average {' '.join(map(str, m['load']))}{busy}")


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ms(values: list[float], digits: int = 3) -> str:
    """mean ± sample std."""
    a = np.asarray(values, dtype=float)
    sd = a.std(ddof=1) if len(a) > 1 else 0.0
    return f"{a.mean():.{digits}f} ± {sd:.{digits}f}"


# ---- part 1: quality --------------------------------------------------------------------


def split(rows: list[dict[str, Any]], key: str, seed: int) -> tuple[list, list]:
    """Half of each stratum (by ``key``) to train, the rest held out; seeded."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for stratum in sorted({r[key] for r in rows}):
        group = [r for r in rows if r[key] == stratum]
        order = rng.permutation(len(group))
        cut = len(group) // 2
        train += [group[i] for i in order[:cut]]
        held += [group[i] for i in order[cut:]]
    return train, held


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """The chance a random positive scores above a random negative (ties count half)."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def metrics(math_s: np.ndarray, general_s: np.ndarray) -> dict[str, float]:
    tp, fp = int((math_s >= 0.5).sum()), int((general_s >= 0.5).sum())
    k = math.ceil(0.95 * len(math_s))
    cut = float(np.sort(math_s)[::-1][k - 1])  # the highest cut-off with recall >= 0.95
    tp95, fp95 = int((math_s >= cut).sum()), int((general_s >= cut).sum())
    out = {
        "auc": auc(math_s, general_s),
        "math_median": float(np.median(math_s)),
        "general_median": float(np.median(general_s)),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / len(math_s),
        "fpr": fp / len(general_s),
        "cut95": cut,
        "recall_at_cut95": tp95 / len(math_s),
        "precision_at_cut95": tp95 / (tp95 + fp95),
    }
    out["p95_at_cut95"] = float(out["precision_at_cut95"] >= 0.95)
    out["pr95_at_05"] = float(out["precision"] >= 0.95 and out["recall"] >= 0.95)
    return out


def part_quality(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from curate.mine import Classifier, FastTextOptions, train_classifier

    start = moment()
    show_moment("quality, start", start)
    maths = load(args.data, MATH)
    for r in maths:
        r["site"] = host(r["url"])
    general = [r for name in GENERAL for r in load(args.data, name)]
    adjacent = load(args.data, ADJACENT)
    for r in adjacent:
        r["site"] = host(r["url"]).split(".")[0]
    per_site = {s: sum(r["site"] == s for r in adjacent) for s in SITES}
    print(
        f"pages: {len(maths)} math ({', '.join(sorted({r['site'] for r in maths}))}), "
        f"{len(general)} general ({len(GENERAL)} files), {len(adjacent)} math-adjacent {per_site}"
    )
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in args.settings}
    top: dict[str, list[tuple[float, str, str]]] = {}
    for seed in args.seeds:
        m_train, m_held = split(maths, "site", seed)
        g_train, g_held = split(general, "file", seed)
        for key in args.settings:
            options = FastTextOptions(**SETTINGS[key][1], seed=seed)
            model = work / f"quality-{key}-{seed}.bin"
            t0 = time.perf_counter()
            trained = train_classifier(
                [r["text"] for r in m_train], [r["text"] for r in g_train], model, options=options
            )
            seconds = time.perf_counter() - t0
            clf = Classifier(model)
            math_s = clf.scores([r["text"] for r in m_held])
            general_s = clf.scores([r["text"] for r in g_held])
            adj_s = clf.scores([r["text"] for r in adjacent])
            del clf
            model.unlink()
            row: dict[str, Any] = {"seed": seed, "train_seconds": seconds, "lr": trained.lr}
            row |= metrics(math_s, general_s)
            for site in SITES:
                s = adj_s[[r["site"] == site for r in adjacent]]
                row[f"{site}_kept"] = float((s >= 0.5).mean())
                row[f"{site}_median"] = float(np.median(s))
            runs[key].append(row)
            if seed == args.seeds[0]:
                worst = np.argsort(-general_s, kind="stable")[:5]
                top[key] = [
                    (float(general_s[i]), g_held[i]["url"] or f"{g_held[i]['id']} (no URL)",
                     g_held[i]["text"][:70].replace("\n", " ").replace("|", "/"))
                    for i in worst.tolist()
                ]  # fmt: skip
            print(
                f"  seed {seed} {key}: {seconds:.1f}s, AUC {row['auc']:.4f}, "
                f"P {row['precision']:.3f} R {row['recall']:.3f}",
                flush=True,
            )
    end = moment()
    n = len(args.seeds)
    print(
        f"\nheld-out per seed: {len(m_held)} math, {len(g_held)} general; train: {len(m_train)} "
        f"math, {len(g_train)} general; mean ± sample std over {n} seeds ({args.seeds})\n"
    )
    print(
        "| setting | train s | ROC AUC | precision @0.5 | recall @0.5 | general kept @0.5 | "
        "P,R ≥ 0.95 @0.5 | cut-off for R ≥ 0.95 | precision there | P ≥ 0.95 there | "
        "median score math / general |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, rows in runs.items():
        col = {k: [r[k] for r in rows] for k in rows[0]}
        print(
            f"| ({key}) {SETTINGS[key][0]} | {ms(col['train_seconds'], 1)} | {ms(col['auc'], 4)} | "
            f"{ms(col['precision'])} | {ms(col['recall'])} | {ms(col['fpr'])} | "
            f"{int(sum(col['pr95_at_05']))}/{n} | {ms(col['cut95'], 4)} | "
            f"{ms(col['precision_at_cut95'])} | {int(sum(col['p95_at_cut95']))}/{n} | "
            f"{np.mean(col['math_median']):.4f} / {np.mean(col['general_median']):.4f} |"
        )
    print(
        "\nmath-adjacent pages (all of them, none in training): share scoring ≥ 0.5, and the "
        "median score (mean over seeds)\n"
    )
    print("| setting | " + " | ".join(f"{s} ({per_site[s]}) ≥ 0.5" for s in SITES) + " |")
    print("|---|" + "---:|" * len(SITES))
    for key, rows in runs.items():
        cells = [
            f"{ms([r[f'{s}_kept'] for r in rows], 2)} (median "
            f"{np.mean([r[f'{s}_median'] for r in rows]):.4f})"
            for s in SITES
        ]
        print(f"| ({key}) {SETTINGS[key][0]} | " + " | ".join(cells) + " |")
    print(f"\ngeneral pages scoring highest, seed {args.seeds[0]}\n")
    print("| setting | score | URL or id | text starts |")
    print("|---|---:|---|---|")
    for key, rows5 in top.items():
        for score, where, text in rows5:
            print(f"| ({key}) | {score:.4f} | {where} | {text} |")
    print()
    show_moment("quality, end", end)
    return {
        "start": start, "end": end, "seeds": args.seeds,
        "held_out": {"math": len(m_held), "general": len(g_held)},
        "train": {"math": len(m_train), "general": len(g_train)},
        "settings": {k: {"name": SETTINGS[k][0], "options": SETTINGS[k][1], "runs": runs[k]}
                     for k in runs},
        "top_general": {k: [list(t) for t in v] for k, v in top.items()},
    }  # fmt: skip


# ---- part 2: speed (each measurement in a child process) ---------------------------------


def cycled(rows: list[Any], n: int) -> list[Any]:
    return list(itertools.islice(itertools.cycle(rows), n))


def child_scores(data: Path, model: str, pages: int) -> dict[str, Any]:
    from curate.mine import Classifier
    from curate.mine.normalize import normalize

    rows = [r for name in (MATH, ADJACENT, *GENERAL) for r in load(data, name)]
    texts = [r["text"] for r in cycled(rows, pages)]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    t0 = time.perf_counter()
    clf = Classifier(model)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for lo in range(0, len(texts), BATCH):
        clf.scores(texts[lo : lo + BATCH])
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in texts[:BATCH]:
        normalize(t)
    normalize_share = (time.perf_counter() - t0) * len(texts) / min(BATCH, len(texts)) / seconds
    return {
        "pages": pages, "mb": mb, "seconds": seconds, "load_seconds": load_s,
        "normalize_share": normalize_share, "peak_mb": peak_mb(),
    }  # fmt: skip


def child_run(pool: str, model: str, out: str) -> dict[str, Any]:
    import curate
    from curate.mine import ClassifierScore, KeepTop

    t0 = time.perf_counter()
    recipe = curate.Recipe(
        "bench", [curate.read(pool, kind="documents")],
        [ClassifierScore(model=model), KeepTop(share=0.1)],
    )  # fmt: skip
    run = recipe.run(out, progress=False)
    seconds = time.perf_counter() - t0
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    kept = run.sql("SELECT count(*) AS n FROM documents")["n"][0]
    return {
        "seconds": seconds, "kept": int(kept), "peak_mb": peak_mb(),
        "children_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "stages": {s["name"]: s["seconds"] for s in manifest["stages"]},
    }  # fmt: skip


def child_train(data: Path, pages: int, threads: int, out: str) -> dict[str, Any]:
    from curate.mine import FastTextOptions, normalize, train_classifier

    maths = [r["text"] for r in load(data, MATH)]
    general = [r["text"] for name in GENERAL for r in load(data, name)]
    pos, neg = cycled(maths, pages // 2), cycled(general, pages - pages // 2)
    tokens = sum(len(normalize(t).split()) for t in maths) * (pages // 2) / len(maths) + sum(
        len(normalize(t).split()) for t in general
    ) * (pages - pages // 2) / len(general)
    t0 = time.perf_counter()
    train_classifier(pos, neg, out, options=FastTextOptions(threads=threads))
    seconds = time.perf_counter() - t0
    size = Path(out).stat().st_size / 1e6
    Path(out).unlink()
    return {
        "pages": pages, "threads": threads, "seconds": seconds, "tokens": tokens,
        "model_mb": size, "peak_mb": peak_mb(),
    }  # fmt: skip


def child(args: argparse.Namespace) -> None:
    spec = json.loads(args.spec)
    what = spec.pop("what")
    if what == "scores":
        out = child_scores(args.data, **spec)
    elif what == "run":
        out = child_run(**spec)
    else:
        out = child_train(args.data, **spec)
    Path(args.result).write_text(json.dumps(out))


def measure(args: argparse.Namespace, work: Path, **spec: Any) -> dict[str, Any]:
    result = work / "child.json"
    cmd = [sys.executable, __file__, "--child", "--spec", json.dumps(spec)]
    cmd += ["--result", str(result), "--data", str(args.data)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(cmd, check=True, env=env)
    out: dict[str, Any] = json.loads(result.read_text())
    result.unlink()
    return out


def part_speed(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from curate.mine import FastTextOptions, train_classifier

    start = moment()
    show_moment("speed, start", start)
    maths = load(args.data, MATH)
    general = [r for name in GENERAL for r in load(args.data, name)]
    everything = [r for name in (MATH, ADJACENT, *GENERAL) for r in load(args.data, name)]
    model = work / "speed.bin"
    t0 = time.perf_counter()
    train_classifier(
        [r["text"] for r in maths], [r["text"] for r in general], model, options=FastTextOptions()
    )
    ref_s = time.perf_counter() - t0
    model_mb = model.stat().st_size / 1e6
    print(
        f"model: DeepSeekMath defaults on {len(maths)} math + {len(general)} general pages, "
        f"{ref_s:.1f}s, {model_mb:,.0f} MB file",
        flush=True,
    )
    out: dict[str, Any] = {"start": start, "model_train_seconds": ref_s, "model_mb": model_mb}
    rows = []

    small = work / "speed-c.bin"
    train_classifier(
        [r["text"] for r in maths], [r["text"] for r in general], small,
        options=FastTextOptions(**SETTINGS["c"][1]),
    )  # fmt: skip
    out["scores"] = {}
    for key, path in (("a", model), ("c", small)) if args.pages else ():
        s = measure(args, work, what="scores", model=str(path), pages=args.pages)
        out["scores"][key] = s
        rows.append(
            (f"Classifier.scores, batches of {BATCH:,}, model ({key}) dim "
             f"{256 if key == 'a' else 64}", s["pages"], s["seconds"], s["mb"], s["peak_mb"],
             f"model load {s['load_seconds']:.1f}s not counted; normalize "
             f"~{100 * s['normalize_share']:.0f}% of the time")
        )  # fmt: skip
        print(f"  scores ({key}): {s['pages'] / s['seconds']:,.0f} pages/s", flush=True)
    small.unlink()

    out["runs"] = []
    for size in args.run_sizes:
        pool = work / f"pool-{size}.jsonl"
        text_mb = 0.0
        with open(pool, "w", encoding="utf-8") as f:
            for r in cycled(everything, size):
                f.write(json.dumps({"text": r["text"], "url": r["url"]}) + "\n")
                text_mb += len(r["text"].encode()) / 1e6
        mb = pool.stat().st_size / 1e6
        run_dir = work / f"run-{size}"
        r = measure(args, work, what="run", pool=str(pool), model=str(model), out=str(run_dir))
        r |= {"pages": size, "pool_mb": mb, "text_mb": text_mb}
        out["runs"].append(r)
        staged = ", ".join(f"{k} {v:.1f}s" for k, v in r["stages"].items())
        rows.append(
            ("Recipe run: ClassifierScore (model a) + KeepTop(share=0.1)", size, r["seconds"],
             text_mb, r["peak_mb"], f"{staged}; kept {r['kept']:,}; JSONL {mb:,.0f} MB")
        )  # fmt: skip
        print(f"  run {size:,}: {size / r['seconds']:,.0f} pages/s", flush=True)
        pool.unlink()
        shutil.rmtree(run_dir)
    model.unlink()

    out["train"] = []
    for threads in args.threads:
        t = measure(args, work, what="train", pages=args.train_pages, threads=threads,
                    out=str(work / "train.bin"))  # fmt: skip
        out["train"].append(t)
        print(f"  train {threads} thread(s): {t['seconds']:.1f}s", flush=True)
    end = moment()
    out["end"] = end

    if rows:
        print("\n| measurement | pages | seconds | pages/s | MB/s | peak RSS MB | notes |")
        print("|---|---:|---:|---:|---:|---:|---|")
    for name, pages, seconds, mb, peak, note in rows:
        print(
            f"| {name} | {pages:,} | {seconds:.1f} | {pages / seconds:,.0f} | {mb / seconds:.2f} | "
            f"{peak:,.0f} | {note} |"
        )
    print(
        "\n| training (DeepSeekMath defaults) | pages | threads | seconds | seconds per 100K "
        "pages | tokens/s | peak RSS MB | model file MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for t in out["train"]:
        print(
            f"| half math, half general (cycled) | {t['pages']:,} | {t['threads']} | "
            f"{t['seconds']:.1f} | {t['seconds'] * 100_000 / t['pages']:,.0f} | "
            f"{t['tokens'] * 3 / t['seconds']:,.0f} | {t['peak_mb']:,.0f} | {t['model_mb']:,.0f} |"
        )
    print("(tokens/s: normalised tokens x 3 epochs / seconds, including normalisation)\n")
    show_moment("speed, end", end)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("quality", "speed", "all"), default="all")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--settings", default="a,b,c", help="of a, b, c (see the docstring)")
    parser.add_argument("--pages", type=int, default=100_000, help="pages scored (speed)")
    parser.add_argument("--run-sizes", default="100000,300000", help="pool sizes of the runs")
    parser.add_argument("--train-pages", type=int, default=10_000)
    parser.add_argument("--threads", default="1,2", help="fastText threads of the training")
    parser.add_argument("--json", type=Path, help="write the numbers to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.settings = [s.strip() for s in args.settings.split(",")]
    if any(s not in SETTINGS for s in args.settings):
        parser.error(f"--settings: expected some of {','.join(SETTINGS)}")
    args.run_sizes = [int(s) for s in args.run_sizes.split(",") if s]
    args.threads = [int(s) for s in args.threads.split(",") if s]

    info = machine()
    print(
        f"{info['cores']} cores, {info['cpu']}, {info['memory_gb']} GiB, python "
        f"{info['python']}, fasttext-numpy2-wheel {info['fasttext']}, numpy {info['numpy']}, "
        f"polars {info['polars']}\n"
    )
    results: dict[str, Any] = {"machine": info}
    work = Path(tempfile.mkdtemp(prefix="bench-mine-"))
    try:
        if args.part in ("quality", "all"):
            results["quality"] = part_quality(args, work)
        if args.part in ("speed", "all"):
            results["speed"] = part_speed(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
