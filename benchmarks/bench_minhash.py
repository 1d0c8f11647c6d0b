"""MinHash near-duplicate detection, side by side on the same data:

(a) datasketch: one ``MinHash`` per document, ``MinHashLSH.query`` then ``insert``, candidates
    verified by ``MinHash.jaccard``, clusters by union-find (timed on at most
    ``--datasketch-max`` documents and extrapolated linearly above that);
(b) rensa: ``RMinHash.from_token_sets`` over all documents, ``RMinHashLSH.insert_many`` and
    ``query_all``, candidates verified by ``jaccard``, union-find;
(c) curate: ``MinHashDedup()`` end to end through ``curate.run.apply_stage``.

(a) and (b) get the same shingles as (c), built per document in Python: word 3-grams of
``curate.shingles.math_tokens``; all three use 128 permutations and threshold 0.7 (datasketch's
LSH picks 14 bands x 9 rows; (b) and (c) use 16 x 8: rensa needs bands dividing 128, and
curate's default leans towards recall; ``curate_14x9`` is curate with datasketch's choice).

Data: the problems of MATH train, DAPO-17k, GSM8K train and rllm's AIME (about 34K), then
copies of randomly chosen ones, each with one light perturbation (``\\frac``/``\\dfrac``,
``$``/``\\(``, whitespace, ``\\left(``, Unicode look-alikes, an answer-format sentence, one or
two words swapped for synonyms), up to each size. Ground truth: a copy duplicates its original.
Every run is a fresh subprocess (peak RSS from ``/proc/self/status``); the methods take
turns, ``--repeats`` rounds, and each keeps its fastest run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_minhash.py [--sizes 10000,100000] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
NUM_PERM, THRESHOLD, NGRAM = 128, 0.7, 3
SYNONYMS = {
    "find": "determine", "determine": "find", "compute": "calculate", "calculate": "compute",
    "what": "which", "largest": "greatest", "smallest": "least", "sum": "total",
    "each": "every", "if": "when", "value": "result", "the": "this", "is": "equals",
}  # fmt: skip
INSTRUCTIONS = (" Put your answer in \\boxed{}.", "\nLet's think step by step.")


def perturb(text: str, rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return text.replace("\\frac", "\\dfrac") if "\\frac" in text else text.replace("$", "$ ")
    if kind == 1:
        return re.sub(r"\$([^$]+)\$", r"\\(\1\\)", text)
    if kind == 2:
        return re.sub(" ", lambda m: rng.choice([" ", "  ", "\n"]), text)
    if kind == 3:
        return re.sub(r"(?<!\\)\(([^()]*)(?<!\\)\)", r"\\left(\1\\right)", text)
    if kind == 4:
        return (
            text.replace("-", "−").replace("'", "’").replace(" a ", " а ").replace(" ", "\xa0", 1)
        )
    if kind == 5:
        return text.rstrip() + rng.choice(INSTRUCTIONS)
    words = [
        m for m in re.finditer(r"(?<![\\\w])[A-Za-z]+(?!\w)", text) if m.group().lower() in SYNONYMS
    ]
    for m in sorted(rng.sample(words, min(len(words), 2)), key=lambda m: -m.start()):
        text = text[: m.start()] + SYNONYMS[m.group().lower()] + text[m.end() :]
    return text


def build(data: Path, size: int, out: Path) -> None:
    """Write ``size`` problems (originals first, then perturbed copies) with their origin."""
    import curate

    sources = [
        curate.read(data / "hendrycks_math/train.jsonl", source="math"),
        curate.read(data / "svs_dapo/dapo_math_17k.parquet", source="dapo"),
        curate.read(
            data / "grade_school_math/train.jsonl", source="gsm8k", problem="question",
            solution="answer",
        ),
        curate.read(data / "rllm/train/aime.json", source="aime"),
    ]  # fmt: skip
    pool = pl.concat([s.frame() for s in sources])
    texts = pool["problem"].to_list()
    base = len(texts)
    origin = list(range(base))
    rng = random.Random(0)
    while len(texts) < size:
        i = rng.randrange(base)
        texts.append(perturb(texts[i], rng))
        origin.append(i)
    n = size
    frame = pl.concat([pool] * (-(-n // base)))[:n].with_columns(
        pl.Series("problem", texts[:n]),
        pl.Series("origin", origin[:n]),
        (pl.lit("r") + pl.int_range(n).cast(pl.String)).alias("id"),
    )
    frame.sample(fraction=1.0, shuffle=True, seed=2).write_parquet(out)  # any prefix is a sample


# ---- the three contenders, each run in a child process --------------------------------------


def features(text: str) -> list[str]:
    from curate.shingles import math_tokens

    t = math_tokens(text)
    return [" ".join(t[i : i + NGRAM]) for i in range(len(t) - NGRAM + 1)] or (
        [" ".join(t)] if t else []
    )


def union_find(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    from curate.dedup.clusters import components

    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    return components(n, a, b)


def run_datasketch(texts: list[str]) -> np.ndarray:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    sketches, pairs = [], []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=NUM_PERM)
        shingles = features(text)
        m.update_batch([s.encode() for s in shingles])
        sketches.append(m)
        if not shingles:
            continue
        for j in lsh.query(m):
            if m.jaccard(sketches[j]) >= THRESHOLD:
                pairs.append((j, i))
        lsh.insert(i, m)
    return union_find(len(texts), pairs)


def run_rensa(texts: list[str]) -> np.ndarray:
    from rensa import RMinHash, RMinHashLSH

    sets = [features(t) for t in texts]
    sketches = RMinHash.from_token_sets(sets, num_perm=NUM_PERM, seed=42)
    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=16)
    live = [i for i, s in enumerate(sets) if s]
    lsh.insert_pairs([(i, sketches[i]) for i in live])
    pairs = [
        (j, i)
        for i, found in zip(live, lsh.query_all([sketches[i] for i in live]), strict=True)
        for j in found
        if j < i and sketches[i].jaccard(sketches[j]) >= THRESHOLD
    ]
    return union_find(len(texts), pairs)


def run_curate(frame: pl.DataFrame, **options: Any) -> np.ndarray:
    from curate.dedup.minhash import MinHashDedup
    from curate.run import apply_stage
    from curate.schema import PROBLEM_COLUMNS

    rows = frame.select(PROBLEM_COLUMNS)
    kept, rejects = apply_stage(MinHashDedup(**options), rows)
    both = pl.concat(
        [kept.select("id", "minhash_cluster"), rejects.select("id", "minhash_cluster")]
    )
    position = {row_id: i for i, row_id in enumerate(rows["id"].to_list())}
    label = np.arange(rows.height)
    for row_id, cluster in both.iter_rows():
        if cluster is not None:
            label[position[row_id]] = position[cluster]
    return label


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would count the parent's too)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def signature_speed(texts: list[str]) -> dict[str, float]:
    """Seconds per 1,000 documents for signatures alone (no LSH), from the same shingles."""
    from datasketch import MinHash
    from rensa import RMinHash

    from curate.dedup.sketch import classic, oph
    from curate.shingles import shingles

    out = {}
    start = time.perf_counter()
    parts = [shingles(texts[lo : lo + 4096], NGRAM) for lo in range(0, len(texts), 4096)]
    out["curate shingles (numpy)"] = time.perf_counter() - start
    for name, sketch in (("curate oph (numpy)", oph), ("curate classic (numpy)", classic)):
        start = time.perf_counter()
        for sh in parts:
            sketch(sh.hashes, sh.offsets, NUM_PERM, 42)
        out[name] = time.perf_counter() - start
    start = time.perf_counter()
    for sh in parts:
        RMinHash.digest_matrix_from_flat_token_hashes(sh.hashes, sh.offsets, NUM_PERM, 42)
    out["rensa RMinHash digest matrix"] = time.perf_counter() - start
    few = texts[:2000]
    sets = [[s.encode() for s in features(t)] for t in few]
    start = time.perf_counter()
    MinHash.bulk(sets, num_perm=NUM_PERM)
    out["datasketch MinHash.bulk"] = (time.perf_counter() - start) * len(texts) / len(few)
    start = time.perf_counter()
    [features(t) for t in texts]
    out["python shingles (math_tokens per doc)"] = time.perf_counter() - start
    return {k: v * 1e6 / len(texts) for k, v in out.items()}  # ms per 1,000 documents


def child(method: str, path: Path, limit: int, result: Path) -> None:
    for module in ("curate.dedup.minhash", "curate.run", "datasketch", "rensa", "numpy.ma"):
        __import__(module)  # imports are not timed (polars loads numpy.ma on first use)
    frame = pl.read_parquet(path)[:limit]
    texts = frame["problem"].to_list()
    if method == "signatures":
        result.write_text(json.dumps(signature_speed(texts)))
        return
    start = time.perf_counter()
    if method == "datasketch":
        labels = run_datasketch(texts)
    elif method == "rensa":
        labels = run_rensa(texts)
    elif method == "curate":
        labels = run_curate(frame)
    elif method == "curate_numbers_ignored":
        labels = run_curate(frame, numbers="ignore")
    elif method == "curate_14x9":
        labels = run_curate(frame, bands=14, rows=9)
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - start
    peak = peak_mb()
    np.save(result.with_suffix(".npy"), labels)
    result.write_text(json.dumps({"seconds": seconds, "peak_mb": peak, "docs": len(texts)}))


# ---- the parent: build data, run children, compare ------------------------------------------


def same(labels: np.ndarray, pairs: np.ndarray) -> float:
    return float((labels[pairs[:, 0]] == labels[pairs[:, 1]]).mean()) if len(pairs) else 1.0


def cluster_pairs(labels: np.ndarray) -> np.ndarray:
    """Every row paired with the first row of its cluster (enough to compare partitions)."""
    first: dict[int, int] = {}
    pairs = []
    for row, label in enumerate(labels.tolist()):
        if label in first:
            pairs.append((first[label], row))
        else:
            first[label] = row
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def exact_jaccard(texts: list[str], pairs: np.ndarray) -> np.ndarray:
    sets = {i: set(features(texts[i])) for i in np.unique(pairs).tolist()}
    return np.array([len(sets[a] & sets[b]) / len(sets[a] | sets[b]) for a, b in pairs.tolist()])


def measure(method: str, path: Path, limit: int, work: Path) -> dict[str, Any]:
    """Run ``method`` once in a fresh process."""
    result = work / f"{method}-{limit}.json"
    cmd = [sys.executable, __file__, "--child", method, "--input", str(path)]
    cmd += ["--limit", str(limit), "--result", str(result)]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    out: dict[str, Any] = json.loads(result.read_text())
    if method != "signatures":
        out["labels"] = np.load(result.with_suffix(".npy"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated document counts")
    parser.add_argument("--datasketch-max", type=int, default=10_000)
    parser.add_argument("--rensa-max", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per method; fastest kept")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.input, args.limit, args.result)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-minhash-"))
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    from importlib.metadata import version

    versions = {m: version(m) for m in ("numpy", "polars", "datasketch", "rensa")}
    print(
        f"{time.strftime('%Y-%m-%d')}, {model}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}, {versions}, load average {os.getloadavg()[0]:.1f}"
    )
    print("| docs | method | seconds | docs/s | peak RSS MB | recall (ground truth) | rejected |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    full = work / "data-100000.parquet"
    build(args.data, 100_000, full)
    for size in sizes:
        path = work / f"data-{size}.parquet"
        if size > 100_000:
            build(args.data, size, path)
        else:  # a random sample of the 100K set: the same mix of originals and copies
            pl.read_parquet(full).sample(size, seed=1).write_parquet(path)
        frame = pl.read_parquet(path)
        truth = cluster_pairs(frame["origin"].to_numpy())
        runs: dict[str, dict[str, Any]] = {}
        plan = [("curate", size), ("curate_numbers_ignored", size), ("curate_14x9", size)]
        plan += [("rensa", size if size <= args.rensa_max else 0)]
        plan += [("datasketch", min(size, args.datasketch_max))]
        plan = [(method, limit) for method, limit in plan if limit]
        # rounds of every method in turn, fastest run of each kept: a slow spell of this
        # shared machine then costs one run of each method, not every run of one method
        for _ in range(1 if size > 100_000 else args.repeats):
            for method, limit in plan:
                r = measure(method, path, limit, work)
                if method not in runs or r["seconds"] < runs[method]["seconds"]:
                    runs[method] = r
        for method, limit in plan:
            r = runs[method]
            rejected = int((r["labels"] != np.arange(limit)).sum())
            note, seconds = "", r["seconds"]
            if limit < size:
                seconds = r["seconds"] * size / limit
                note = f" (timed on {limit:,}, x{size / limit:.0f})"
            print(
                f"| {size:,} | {method}{note} | {seconds:.2f} | {size / seconds:,.0f} | "
                f"{r['peak_mb']:.0f} | {same(r['labels'], truth[truth[:, 1] < limit]):.4f} | "
                f"{rejected:,} |",
                flush=True,
            )
        if size == 100_000:
            speed = measure("signatures", path, size, work)
            print("  signatures alone, ms per 1,000 documents (same shingles where it applies):")
            for name, ms in speed.items():
                print(f"    {name}: {ms:.1f}")
        if "datasketch" not in runs:
            continue
        per_doc = runs["datasketch"]["seconds"] / len(runs["datasketch"]["labels"])
        for method in ("curate", "rensa"):
            if method in runs:
                speedup = per_doc * size / runs[method]["seconds"]
                print(f"  speed-up of {method} over datasketch: {speedup:.1f}x")
        if len(runs["datasketch"]["labels"]) == size:  # all saw the same documents
            found = cluster_pairs(runs["datasketch"]["labels"])
            similar = exact_jaccard(frame["problem"].to_list(), found) >= THRESHOLD
            print(
                f"  datasketch's duplicate pairs: {len(found):,}, of which {similar.sum():,} "
                f"have exact Jaccard >= {THRESHOLD}; recall on those:"
            )
            for method in ("curate", "curate_numbers_ignored", "curate_14x9", "rensa"):
                print(f"    {method}: {same(runs[method]['labels'], found[similar]):.4f}")


if __name__ == "__main__":
    main()
