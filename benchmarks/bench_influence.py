r"""Is gradient-influence selection better than random? `curate.InfluenceSelect` against its
baselines on the toy task, on a CPU (issue 14).

The setting (LESS's question at toy scale):

- **Pool**: three skills of `curate.toy`, each 400 distinct problems (levels 1-2):
  additions and subtractions answered directly, and additions worked in columns. In
  ``--corrupt`` of each skill's rows (default 40%) the solution's answer is wrong (the true
  answer plus 1 to 3, in the reasoning and in the box): what SFT on them teaches is wrong.
- **Target**: 16 clean subtraction problems not in the pool (LESS's few target examples).
- **Held out**: every other subtraction problem of levels 1-2 not in the pool or the target,
  up to 200; the measure is the trained model's pass@1 on them.
- **Model**: `curate.toy`'s weak model (``toy_model(steps=300)``; it solves about a fifth of
  one-digit problems).
- **Arms**, each selecting ``--budget`` of the pool (default 10%, 120 rows) and fine-tuned
  with the same SFT settings for the same number of steps (`curate.train.sft`):
  ``random``; ``embedding`` (RDS+: mean-pooled hidden states of the model); ``minilm``
  (MiniLM sentence embeddings); ``influence`` (LESS: LoRA warm-up on 5% of the pool,
  Adam-aware gradients at 4 checkpoints, projected to 8,192 numbers); ``oracle`` (clean
  subtraction rows drawn at random: the right skill and right labels). ``base``: no training.
- **Seeds**: each seed redraws the random and oracle selections and the warm-up sample, and
  seeds the SFT; the pool, target and held-out set stay fixed. Evaluation uses the same
  sample seeds for every model (`curate.evaluate`, 4 samples per problem, temperature 0.6).

Reported: per arm, the selection's make-up (share of subtraction rows, share of correct
labels), held-out pass@1, and its difference to random paired over problems and seeds (mean
and spread over seeds).

Run from the repository root::

    .venv/bin/python benchmarks/bench_influence.py [--seeds 0 1 2 3 4] [--quick]

Outputs go under ``runs/bench_influence/`` (git-ignored); a re-run reuses finished runs,
trainings and evaluations unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import sys
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from _timing import Laps

import curate
import curate.train
from curate.io import write_jsonl
from curate.stage import Filter, StageContext
from curate.toy import toy_model, unseen_problems, wrong_answer

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "{problem}"
Z95 = 1.959964
ARMS = ("random", "embedding", "minilm", "influence", "oracle")
TOY_LORA = {"r": 8, "lora_alpha": 32, "lora_dropout": 0.1,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}  # fmt: skip


def make_data(out: Path, per_skill: int, corrupt: float) -> dict[str, Any]:
    """The pool's three skills (``per_skill`` distinct problems each, ``corrupt`` of them with
    a wrong answer), the target (16 clean two-column sums) and the held-out set (200
    two-column sums), none of them in another."""
    skills = {
        "columns": unseen_problems([], per_skill, seed=10, levels=[2], task="columns"),
        "add": unseen_problems([], per_skill, seed=11, levels=[1, 2], ops=["+"]),
        "sub": unseen_problems([], per_skill, seed=12, levels=[1, 2], ops=["-"]),
    }
    rng = random.Random("bench-influence-corrupt")
    files = {}
    for skill, rows in skills.items():
        picked = [{**r, "corrupted": "0"} for r in rows]
        for i in rng.sample(range(len(picked)), round(corrupt * len(picked))):
            picked[i] = {**wrong_answer(picked[i], rng), "corrupted": "1"}
        files[skill] = write_jsonl(picked, out / f"pool-{skill}.jsonl")
    target = unseen_problems(skills["columns"], 16, seed=13, levels=[2], task="columns")
    heldout = unseen_problems(skills["columns"] + target, 200, seed=13, levels=[2], task="columns")
    return {
        "pool": files,
        "target": write_jsonl(target, out / "target.jsonl"),
        "heldout": write_jsonl(heldout, out / "heldout.jsonl"),
        "sizes": {"per_skill": per_skill, "target": len(target), "heldout": len(heldout)},
    }


@dataclass(frozen=True)
class Pick(Filter):
    """The oracle's selection: keep the rows whose ``source`` and ``problem`` are listed."""

    version: ClassVar[str] = "1"
    keys: tuple[str, ...]

    def reads(self) -> tuple[str, ...]:
        return ("source", "problem")

    def adds(self) -> tuple[str, ...]:
        return ()

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        key = pl.concat_str("source", pl.lit("\t"), "problem")
        return self.mark(batch.lazy(), ~key.is_in(list(self.keys)), "not_selected", "oracle")


def oracle_keys(data: dict[str, Any], budget: int, seed: int) -> tuple[str, ...]:
    rows = [json.loads(line) for line in data["pool"]["columns"].read_text().splitlines()]
    clean = sorted(r["problem"] for r in rows if r["corrupted"] == "0")
    random.Random(f"oracle-{seed}").shuffle(clean)
    return tuple(f"columns\t{p}" for p in sorted(clean[:budget]))


def select(data: dict[str, Any], arm: str, seed: int, budget: int, weak: Path, out: Path,
           args: argparse.Namespace) -> curate.Run:  # fmt: skip
    sources = [curate.read(path, source=skill) for skill, path in data["pool"].items()]
    common: dict[str, Any] = {"model": str(weak), "target": str(data["target"]),
                              "budget": budget, "seed": seed, "threads": 1}  # fmt: skip
    stage: curate.Stage
    if arm == "oracle":
        stage = Pick(oracle_keys(data, budget, seed))
    elif arm == "random":
        stage = curate.InfluenceSelect(method="random", **common)
    elif arm in ("embedding", "minilm"):
        stage = curate.InfluenceSelect(
            method="embedding", embedding="hidden" if arm == "embedding" else "minilm", **common
        )
    else:
        stage = curate.InfluenceSelect(
            method="influence", lora=TOY_LORA, warmup=0.05, max_length=96,
            warmup_overrides={"learning_rate": args.warmup_lr, "global_batch": 16,
                              "micro_batch": 8},
            batch_size=8, **common,
        )  # fmt: skip
    return curate.Recipe(f"influence-{arm}", sources, [stage]).run(out, progress=False)


def make_up(run: curate.Run) -> dict[str, float]:
    kept = run.table("problems").collect()
    boxed = kept["solution"].str.extract(r"\\boxed\{([^}]*)\}")
    return {
        "rows": kept.height,
        "skill": float((kept["source"] == "columns").mean()),  # type: ignore[arg-type]
        "clean": float((boxed == kept["answer"]).mean()),  # type: ignore[arg-type]
    }


def train(run: curate.Run, weak: Path, out: Path, seed: int, args: argparse.Namespace) -> Path:
    export = curate.export_run(
        run, out / "export", format="sft", template=TEMPLATE, completions="solutions"
    )
    result = curate.train.sft(
        export.out, weak, out / "sft", preset="deepdistill-stage1", learning_rate=args.lr,
        epochs=args.epochs, global_batch=16, micro_batch=16, max_length=128, packing=False,
        seed=seed, threads=1, progress=False,
    )  # fmt: skip
    return Path(result.model)


def evaluate(model: Path, data: dict[str, Any], out: Path) -> pl.DataFrame:
    """Per-problem pass rate on the held-out set (4 samples each, sample seed 0)."""
    generator = curate.HFGenerator(str(model), threads=1, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = curate.evaluate(
            generator, data["heldout"], out=out, n=4, temperature=0.6, top_p=0.95,
            max_tokens=64, seed=0, template=TEMPLATE,
        )  # fmt: skip
    return (
        result.samples.group_by("problem_id")
        .agg(pl.col("correct").cast(pl.Float64).mean().alias("rate"))
        .sort("problem_id")
    )


def paired(a: pl.DataFrame, b: pl.DataFrame) -> tuple[float, float]:
    both = a.join(b, on="problem_id", suffix="_b")
    diff = both["rate"] - both["rate_b"]
    return float(diff.mean()), Z95 * float(diff.std()) / math.sqrt(diff.len())  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--per-skill", type=int, default=400)
    parser.add_argument("--corrupt", type=float, default=0.4)
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3, help="SFT learning rate")
    parser.add_argument("--epochs", type=float, default=8.0, help="SFT epochs")
    parser.add_argument("--warmup-lr", type=float, default=1e-3, help="LESS warm-up rate")
    parser.add_argument("--quick", action="store_true", help="one seed, a small pool")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_influence")
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.per_skill = args.seeds[:1], 120
    if args.fresh:
        shutil.rmtree(args.out, ignore_errors=True)
    out: Path = args.out
    laps = Laps()
    lap, times = laps.lap, laps.times

    weak = toy_model(steps=600, task="columns")
    data = make_data(out / "data", args.per_skill, args.corrupt)
    budget = round(args.budget * 3 * args.per_skill)
    lap("data and model")
    scores: Scores = {"base": {0: evaluate(weak, data, out / "eval-base")}}
    lap("evaluate")
    makeup: MakeUp = {}
    for seed in args.seeds:
        for arm in args.arms:
            run = select(data, arm, seed, budget, weak, out / f"{arm}-{seed}" / "run", args)
            makeup.setdefault(arm, {})[seed] = make_up(run)
            lap(f"select ({arm})")
            model = train(run, weak, out / f"{arm}-{seed}", seed, args)
            lap("train")
            scores.setdefault(arm, {})[seed] = evaluate(model, data, out / f"{arm}-{seed}" / "eval")
            lap("evaluate")
    print(report(scores, makeup, args, data, times))


Scores = dict[str, dict[int, pl.DataFrame]]
MakeUp = dict[str, dict[int, dict[str, float]]]


def report(
    scores: Scores, makeup: MakeUp, args: argparse.Namespace, data: dict[str, Any],
    times: dict[str, float],
) -> str:  # fmt: skip
    import torch

    base = scores["base"][0]
    lines = [
        f"bench_influence: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} (1 thread), seeds {args.seeds}, "
        f"pool {3 * args.per_skill} ({args.corrupt:.0%} corrupted), budget {args.budget:.0%}, "
        f"total {sum(times.values()):.0f} s",
        "",
        f"base model: held-out pass@1 {100 * float(base['rate'].mean()):.1f}",  # type: ignore[arg-type]
        "",
        "| arm | target skill in selection | correct labels | held-out pass@1 (mean ± sd over "
        "seeds) | vs random, paired (mean ± sd over seeds) | seeds above random | vs embedding "
        "(RDS+), paired | seeds above embedding |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in [a for a in ARMS if a in scores]:
        seeds = sorted(scores[arm])
        p1 = [100 * float(scores[arm][s]["rate"].mean()) for s in seeds]  # type: ignore[arg-type]
        p1_text = f"{statistics.fmean(p1):.1f} ± {statistics.stdev(p1) if len(p1) > 1 else 0:.1f}"
        mu = makeup[arm]
        skill = statistics.fmean(mu[s]["skill"] for s in seeds)
        clean = statistics.fmean(mu[s]["clean"] for s in seeds)
        cells = [_versus(scores, arm, other, seeds) for other in ("random", "embedding")]
        lines.append(f"| {arm} | {skill:.0%} | {clean:.0%} | {p1_text} | {' | '.join(cells)} |")
    lines += ["", "| phase | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in times.items()]
    lines += ["", "Data: " + json.dumps(data["sizes"])]
    text = "\n".join(lines)
    (args.out / "results.md").write_text(text + "\n")
    return text


def _versus(scores: Scores, arm: str, other: str, seeds: list[int]) -> str:
    """Mean ± sd over seeds of the paired difference to ``other``, and on how many seeds it
    is positive (two cells)."""
    if arm == other or other not in scores:
        return " | "
    vs = [100 * paired(scores[arm][s], scores[other][s])[0] for s in seeds if s in scores[other]]
    return f"{_ms(vs)} | {sum(v > 0 for v in vs)}/{len(vs)}"


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):+.1f} ± {sd:.1f}" if values else "-"


if __name__ == "__main__":
    sys.exit(main())
