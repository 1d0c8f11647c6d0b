r"""Does training on curate's data make a model better? SFT and GRPO on the toy task, on a CPU.

What it measures (issue 12), with `curate.toy`'s arithmetic task and its two tiny models
(``toy_model(steps=300)``: "weak", ``steps=600``: "strong"):

1. **SFT on selected distillations.** The strong model answers every problem of a
   training pool 4 times (`curate.Distill` through `curate.HFGenerator`, temperature 0.6);
   the correct answers are exported (`curate.export_run(format="sft")`, the default
   selection: correct, finished responses, each distinct (prompt, completion) once) and the
   weak model is fine-tuned on them (`curate.train.sft`).
   Control: the same training on as many of the strong model's distinct responses drawn
   at random *regardless of correctness* (a `selected` column written by a small stage of
   this script, then the same export), so a gain can be told apart from "more training".
2. **GRPO with curate's reward.** The weak model trained with `curate.train.grpo` on the
   pool's ``rl`` export (0/1 verifier reward of `curate.reward`): mean training reward of
   the first vs the last steps, and held-out pass@1 before and after. Two prompt sets:
   ``grpo``, the whole pool (two thirds of it beyond the weak model: no signal), and
   ``band``, the pool's problems the weak model solves sometimes but not always (8 samples
   of it at temperature 1.0 each, `curate.Grade`, `curate.PassRateBand(low=0, high=1)`:
   DeepScaleR's and open-r1's curation).

Every model is scored by `curate.evaluate` on a held-out set (8 samples per problem,
temperature 0.6, top-p 0.95, the same sample seeds for every model): pass@1 with its 95%
interval over problems, per level, and the gain over the untrained weak model with a 95%
interval paired over problems; then the mean gain and its standard deviation over the
training seeds.

The data. The task has only 155 distinct one-digit problems (level 1: the weak model
solves about 20% of samples, the strong one 60%) and far more two- and three-digit ones
(levels 2 and 3: neither model gets them right, the strong one 1-2%). So the held-out
set is built to be disjoint from the pool and to keep the task's level mix: every level-1
problem not in the pool, plus twice as many level-2/3 problems not in the pool. Held-out
level-1 problems are one-digit facts the training never showed: a gain there is
generalisation, not memorisation. The pool's own level-1 problems are scored too
("pool L1": were the training facts learned at all?).

``--task columns`` runs the same measurements on the toy's column-addition task
(``curate.toy.toy_problems(task="columns")``), where every problem shares one procedure:
the weak model is ``toy_model(steps=600, task="columns")`` (one-column sums all right,
two columns 15%, three 0%), the held-out set is 200 two-column and 100 three-column sums
not in the pool, and "pool L1" is the pool's two-column problems. Its "strong" model
(1,200 steps) is no stronger on two columns, so only the GRPO arms mean anything there::

    .venv/bin/python benchmarks/bench_learning.py --task columns --arms grpo band \
        --grpo-steps 150 --seeds 0 1 2

How to read it: a method helps when its mean gain is positive on every seed and larger
than the spread over seeds, and the SFT gain exceeds the control's. Overall pass@1 moves
with level 1 only (levels 2-3 stay near 0 for every model).

Settings (``--sft-*``, ``--grpo-*``) were picked in a few trial runs on seed 0: SFT's 30
epochs as the point where the student matches the teacher on the training facts (pool L1),
GRPO's learning rate 1e-4 because 5e-4 collapsed the model (held-out L1 14% -> 5%).

Run from the repository root (about 7 minutes on 2 shared cores, plus half a minute to
train the toy models the first time; ``--quick``: one seed, fewer steps, a smoke test)::

    .venv/bin/python benchmarks/bench_learning.py [--seeds 0 1 2] [--quick]

Outputs go under ``runs/bench_learning/`` (git-ignored); a re-run reuses what is there
(distillations, trained models, evaluation samples) unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import warnings
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from _timing import Laps

import curate
import curate.train
from curate.generate import Sampling
from curate.io import write_jsonl
from curate.responses import read_responses
from curate.select import uniform
from curate.stage import Stage, StageContext
from curate.toy import Task, toy_model, toy_problems

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "{problem}"  # the toy models were trained on the bare problem text
SAMPLING = Sampling(temperature=0.6, top_p=0.95, max_tokens=48)  # answers take ~25 tokens
MAX_TOKENS = {"direct": 48, "columns": 64}  # three columns take ~40 tokens
EVAL_N = 8
STEPS: dict[str, tuple[int, int]] = {"direct": (300, 600), "columns": (600, 1200)}
"""Training steps of the weak and the strong toy model, per task."""
Z95 = 1.959964


@dataclass(frozen=True)
class RandomResponses(Stage):
    """The control's selection: ``count`` distinct (problem, text) responses drawn at
    random among all finished ones, correct or not, as the ``selected`` column the SFT
    export follows."""

    version: ClassVar[str] = "1"
    count: int
    seed: int = 0

    def apply(self, rows: pl.LazyFrame, ctx: StageContext) -> pl.DataFrame:
        frame = rows.collect()
        responses = (
            ctx.responses.read()
            .filter(pl.col("finish_reason") == "stop")
            .sort("problem_id", "model", "sample")
            .unique(["problem_id", "text"], keep="first", maintain_order=True)
        )
        keys = [
            f"{p}/{m}/{s}" for p, m, s in responses.select("problem_id", "model", "sample").rows()
        ]
        drawn = (
            responses.with_columns(pl.Series("draw", [uniform(self.seed, k) for k in keys]))
            .sort("draw")
            .head(self.count)
        )
        chosen = drawn.group_by("problem_id").agg(
            pl.struct("model", pl.col("sample").cast(pl.Int32)).alias("selected")
        )
        ctx.stats["selected"] = drawn.height
        ctx.stats["selected_correct"] = int(drawn["correct"].fill_null(False).sum())
        out = frame.join(chosen, left_on="id", right_on="problem_id", how="left")
        return out.with_columns(pl.col("selected").fill_null([]))


# ---------------------------------------------------------------------------- data


def distinct(rows: list[dict[str, Any]], exclude: Collection[str] = ()) -> list[dict[str, Any]]:
    """The rows whose problem text is not in ``exclude`` nor in an earlier row."""
    seen = set(exclude)
    kept = []
    for r in rows:
        if r["problem"] not in seen:
            seen.add(r["problem"])
            kept.append(r)
    return kept


def make_data(out: Path, pool_draws: int, task: Task) -> dict[str, Any]:
    """The training pool (distinct problems of ``toy_problems(pool_draws, seed=0)``) and
    the held-out set, as JSONL; and the pool's problems of the level that shows learning
    ("seen") as a set of their own.

    The direct task's held-out set is every level-1 problem not in the pool and twice as
    many level-2/3 ones not in it; "seen" is the pool's level 1. The column task's
    level 1 (100 one-column sums) is learnt whole by every model, so its held-out set is
    200 level-2 and 100 level-3 problems not in the pool; "seen" is the pool's level 2."""
    pool = distinct(toy_problems(pool_draws, seed=0, task=task))
    texts = {r["problem"] for r in pool}
    if task == "direct":
        one = distinct(toy_problems(3000, seed=1, levels=[1]), texts)  # all that are left
        many = distinct(toy_problems(4 * len(one) + 100, seed=1, levels=[2, 3]), texts)
        heldout, seen = one + many[: 2 * len(one)], "1"
    else:
        two = distinct(toy_problems(400, seed=1, levels=[2], task=task), texts)[:200]
        three = distinct(toy_problems(200, seed=1, levels=[3], task=task), texts)[:100]
        heldout, seen = two + three, "2"
    return {
        "pool": write_jsonl(pool, out / "pool.jsonl"),
        "heldout": write_jsonl(heldout, out / "heldout.jsonl"),
        "pool_l1": write_jsonl([r for r in pool if r["level"] == seen], out / "pool_seen.jsonl"),
        "sizes": {
            "seen_level": seen,
            "pool": len(pool),
            "pool_by_level": _by_level(pool),
            "heldout": len(heldout),
            "heldout_by_level": _by_level(heldout),
        },
    }


def _by_level(rows: list[dict[str, Any]]) -> dict[str, int]:
    levels = sorted({r["level"] for r in rows})
    return {lv: sum(r["level"] == lv for r in rows) for lv in levels}


def distill(data: dict[str, Any], weak: Path, strong: Path, out: Path) -> dict[str, Any]:
    """Distill the strong model on the pool; export the correct responses (sft), the same
    number of responses drawn regardless of correctness (the control), the prompts (rl),
    and the prompts the weak model solves sometimes but not always (rl, "band")."""
    source = curate.read(data["pool"], source="toy")
    generator = curate.HFGenerator(str(strong), label="toy-strong", threads=1, batch_size=64)
    stage = curate.Distill(generator, n=4, sampling=SAMPLING, template=TEMPLATE)
    run = curate.Recipe("learning", sources=[source], stages=[stage]).run(
        out / "run", progress=False
    )
    sft = curate.export_run(run, out / "export-sft", format="sft", template=TEMPLATE)
    rl = curate.export_run(run, out / "export-rl", format="rl", template=TEMPLATE)
    # the control: a second run over the same responses (copied: nothing is generated again)
    control_dir = out / "run-control"
    if not (control_dir / "responses").exists():
        shutil.copytree(out / "run" / "responses", control_dir / "responses")
    picked = RandomResponses(count=sft.rows["train"])
    control_run = curate.Recipe("learning-control", sources=[source], stages=[stage, picked]).run(
        control_dir, progress=False
    )
    control = curate.export_run(
        control_run, out / "export-control", format="sft", template=TEMPLATE
    )
    # GRPO's curated prompts: the pool's problems the weak model solves sometimes, not always
    # (the pass-rate band of DeepScaleR and open-r1), by 8 samples of it at temperature 1.0
    weak_generator = curate.HFGenerator(str(weak), label="toy-weak", threads=1, batch_size=64)
    graded = curate.Distill(
        weak_generator,
        n=8,
        sampling=Sampling(temperature=1.0, max_tokens=SAMPLING.max_tokens),
        template=TEMPLATE,
    )
    band_run = curate.Recipe(
        "learning-band",
        sources=[source],
        stages=[graded, curate.Grade(), curate.PassRateBand(low=0.0, high=1.0)],
    ).run(out / "run-band", progress=False)
    band = curate.export_run(band_run, out / "export-band", format="rl", template=TEMPLATE)
    responses = read_responses(out / "run" / "responses")
    return {
        "sft": sft.out,
        "control": control.out,
        "rl": rl.out,
        "responses": responses.height,
        "responses_correct": int(responses["correct"].fill_null(False).sum()),
        "sft_rows": sft.rows["train"],
        "sft_duplicates": sft.duplicates,
        "control_rows": control.rows["train"],
        "control_correct": _correct_rows(control.out),
        "rl_rows": rl.rows["train"],
        "band": band.out,
        "band_rows": band.rows["train"],
        "band_by_level": _levels_of(band.out),
    }


def _levels_of(export: Path) -> dict[str, int]:
    frame = pl.read_parquet(export / "data" / "*.parquet")
    return dict(sorted(frame["level"].value_counts().rows()))


def _correct_rows(export: Path) -> int:
    """How many rows of an sft export end with the gold answer boxed (the toy's format)."""
    frame = pl.read_parquet(export / "data" / "*.parquet")
    reply = frame["messages"].list.last().struct.field("content")
    boxed = reply.str.extract(r"\\boxed\{([^}]*)\}")
    return int((boxed == frame["answer"]).sum())


# ---------------------------------------------------------------------------- evaluation


@dataclass
class Score:
    """A model's samples on a benchmark: per-problem pass rates, with their level."""

    name: str
    per_problem: pl.DataFrame  # problem_id, level, rate

    @property
    def pass1(self) -> float:
        return float(self.per_problem["rate"].mean())  # type: ignore[arg-type]

    @property
    def ci95(self) -> float:
        rates = self.per_problem["rate"]
        return Z95 * float(rates.std()) / math.sqrt(rates.len())  # type: ignore[arg-type]

    def level(self, lv: str) -> float:
        rates = self.per_problem.filter(pl.col("level") == lv)["rate"]
        return float(rates.mean()) if rates.len() else math.nan  # type: ignore[arg-type]

    def gain(self, base: Score) -> tuple[float, float]:
        """Mean difference of pass rates over the same problems, and its 95% interval."""
        both = self.per_problem.join(base.per_problem, on="problem_id", suffix="_base")
        diff = both["rate"] - both["rate_base"]
        return float(diff.mean()), Z95 * float(diff.std()) / math.sqrt(diff.len())  # type: ignore[arg-type]


def evaluate(model: Path, benchmark: Path, out: Path, seed: int) -> Score:
    """``curate.evaluate`` with the toy's settings; per-problem pass rates with levels."""
    generator = curate.HFGenerator(str(model), threads=1, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # "x% of samples cut" would be a real finding: checked below
        result = curate.evaluate(
            generator,
            benchmark,
            out=out,
            n=EVAL_N,
            temperature=SAMPLING.temperature,
            top_p=SAMPLING.top_p,
            max_tokens=SAMPLING.max_tokens,
            seed=seed,
            template=TEMPLATE,
        )
    (name,) = result.scores
    if result.scores[name]["truncated"] > 0.05:
        print(f"WARNING: {out}: {result.scores[name]['truncated']:.0%} of samples truncated")
    levels = (
        curate.read(benchmark, source=name)
        .frame()
        .select(pl.col("id").alias("problem_id"), "level")
    )
    per_problem = (
        result.samples.group_by("problem_id")
        .agg(pl.col("correct").cast(pl.Float64).mean().alias("rate"))
        .join(levels, on="problem_id")
        .sort("problem_id")
    )
    return Score(str(model), per_problem)


# ---------------------------------------------------------------------------- training


def train_sft(export: Path, weak: Path, out: Path, seed: int, args: argparse.Namespace) -> Any:
    return curate.train.sft(
        export,
        weak,
        out,
        preset="deepdistill-stage1",
        learning_rate=args.sft_lr,
        epochs=args.sft_epochs,
        global_batch=16,
        micro_batch=16,
        max_length=128,
        seed=seed,
        threads=1,
        progress=False,
    )


def rewards(metrics: pl.DataFrame) -> dict[str, float]:
    """Mean training reward over the first and last 5 steps and the first and last quarter
    of the steps (each step's reward is the mean over its prompts x samples), and the share
    of groups with no learning signal (all rewards equal)."""
    m = metrics.sort("step")
    quarter = max(1, m.height // 4)
    mean = lambda f: float(f["reward"].mean())  # noqa: E731
    return {
        "first5": mean(m.head(5)),
        "last5": mean(m.tail(5)),
        "first_q": mean(m.head(quarter)),
        "last_q": mean(m.tail(quarter)),
        "all_equal": float(m["groups_all_equal"].mean()),  # type: ignore[arg-type]
    }


def train_grpo(export: Path, weak: Path, out: Path, seed: int, args: argparse.Namespace) -> Any:
    return curate.train.grpo(
        export,
        weak,
        out,
        preset="deepscaler",  # DAPO token-level loss, group-scaled advantages
        stages=[(SAMPLING.max_tokens, args.grpo_generations, args.grpo_steps)],
        prompts_per_step=args.grpo_prompts,
        updates_per_step=1,  # one update per rollout (the preset makes two), as measured
        micro_batch=16,
        learning_rate=args.grpo_lr,
        beta=args.grpo_beta,
        temperature=1.0,
        seed=seed,
        threads=1,
        progress=False,
    )


# ---------------------------------------------------------------------------- report


def pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}"


def _ms(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):+.3f} ± {sd:.3f}"


def mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):+.1f} ± {100 * sd:.1f}"


def report(
    scores: dict[str, dict[str, Score]],
    grpo_rewards: dict[str, dict[str, float]],
    seeds: list[int],
    facts: dict[str, Any],
    times: dict[str, float],
) -> str:
    held, pool1 = scores["heldout"], scores["pool_l1"]
    base = held["weak"]
    seen_level = facts["seen_level"]
    first = min(facts["heldout_by_level"])  # the held-out level a gain shows on first
    lines = [
        "| model | seed | held-out pass@1 ±95% CI | L1 | L2 | L3 | gain vs weak ±95% CI "
        f"(paired) | pool L{seen_level} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = ["weak", "strong"]
    order += [f"{arm}-{s}" for arm in ("sft", "control", "grpo", "band") for s in seeds]
    for key in order:
        if key not in held:
            continue
        s = held[key]
        arm, _, seed = key.partition("-")
        gain = (
            "" if key in ("weak",) else "{:+.1f} ± {:.1f}".format(*(100 * g for g in s.gain(base)))
        )
        lines.append(
            f"| {arm} | {seed or '-'} | {pct(s.pass1)} ± {pct(s.ci95)} | {pct(s.level('1'))} | "
            f"{pct(s.level('2'))} | {pct(s.level('3'))} | {gain} | {pct(pool1[key].pass1)} |"
        )
    lines += [
        "",
        f"| arm | mean gain ± sd over seeds: held-out | held-out L{first} | pool L{seen_level} |",
        "|---|---|---|---|",
    ]
    for arm in ("sft", "control", "grpo", "band"):
        keys = [f"{arm}-{s}" for s in seeds if f"{arm}-{s}" in held]
        if not keys:
            continue
        overall = [held[k].pass1 - base.pass1 for k in keys]
        level1 = [held[k].level(first) - base.level(first) for k in keys]
        seen = [pool1[k].pass1 - pool1["weak"].pass1 for k in keys]
        lines.append(f"| {arm} | {mean_std(overall)} | {mean_std(level1)} | {mean_std(seen)} |")
    if grpo_rewards:
        lines += [
            "",
            "| GRPO run | reward, first 5 steps | last 5 | change | first quarter | last "
            "quarter | change | groups all equal |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, r in grpo_rewards.items():
            lines.append(
                f"| {key} | {r['first5']:.3f} | {r['last5']:.3f} | {r['last5'] - r['first5']:+.3f} "
                f"| {r['first_q']:.3f} | {r['last_q']:.3f} | {r['last_q'] - r['first_q']:+.3f} "
                f"| {r['all_equal']:.0%} |"
            )
        for arm in ("grpo", "band"):
            runs = [r for k, r in grpo_rewards.items() if k.startswith(f"{arm}-")]
            if runs:
                five = [r["last5"] - r["first5"] for r in runs]
                quarter = [r["last_q"] - r["first_q"] for r in runs]
                lines.append(f"| {arm}: mean ± sd | | | {_ms(five)} | | | {_ms(quarter)} | |")
    lines += ["", "| phase | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in times.items()]
    lines += ["", "Facts: " + json.dumps(facts, default=str)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="one seed, few steps: a smoke test")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_learning")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    parser.add_argument("--pool", type=int, default=400, help="problems drawn for the pool")
    parser.add_argument(
        "--task",
        choices=["direct", "columns"],
        default="direct",
        help="the toy task: one-step answers (facts) or column addition (a procedure)",
    )
    parser.add_argument("--weak-steps", type=int, help="training steps of the weak toy model")
    parser.add_argument("--strong-steps", type=int, help="training steps of the strong one")
    parser.add_argument(
        "--arms", nargs="+", default=["sft", "control", "grpo", "band"], help="what to train"
    )
    parser.add_argument("--sft-lr", type=float, default=1e-3)
    parser.add_argument("--sft-epochs", type=float, default=30.0)
    parser.add_argument("--grpo-lr", type=float, default=1e-4)
    parser.add_argument("--grpo-beta", type=float, default=0.0)
    parser.add_argument("--grpo-steps", type=int, default=60)
    parser.add_argument("--grpo-prompts", type=int, default=8)
    parser.add_argument("--grpo-generations", type=int, default=8)
    args = parser.parse_args()
    global SAMPLING
    SAMPLING = replace(SAMPLING, max_tokens=MAX_TOKENS[args.task])
    if args.quick:
        args.seeds, args.grpo_steps, args.sft_epochs = args.seeds[:1], 10, 3.0
    if args.fresh:
        shutil.rmtree(args.out, ignore_errors=True)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    laps = Laps()
    lap, times = laps.lap, laps.times

    weak_steps, strong_steps = STEPS[args.task]
    weak = toy_model(steps=args.weak_steps or weak_steps, task=args.task)
    strong = toy_model(steps=args.strong_steps or strong_steps, task=args.task)
    lap("toy models (cached after the first run)")
    data = make_data(out / "data", args.pool, args.task)
    made = distill(data, weak, strong, out)
    lap("distill the strong model + exports")
    benches = {"heldout": data["heldout"], "pool_l1": data["pool_l1"]}
    scores: dict[str, dict[str, Score]] = {b: {} for b in benches}

    def score(key: str, model: Path) -> None:
        for bench, path in benches.items():
            scores[bench][key] = evaluate(model, path, out / "eval" / bench / key, seed=0)

    score("weak", weak)
    score("strong", strong)
    lap("evaluate")
    grpo_rewards: dict[str, dict[str, float]] = {}
    for seed in args.seeds:
        if "sft" in args.arms:
            result = train_sft(made["sft"], weak, out / f"sft-{seed}", seed, args)
            lap("train sft")
            score(f"sft-{seed}", result.model)
            lap("evaluate")
        if "control" in args.arms:
            result = train_sft(made["control"], weak, out / f"control-{seed}", seed, args)
            lap("train sft (control)")
            score(f"control-{seed}", result.model)
            lap("evaluate")
        for arm, export in (("grpo", made["rl"]), ("band", made["band"])):
            if arm not in args.arms:
                continue
            result = train_grpo(export, weak, out / f"{arm}-{seed}", seed, args)
            lap(f"train grpo ({'band' if arm == 'band' else 'pool'})")
            grpo_rewards[f"{arm}-{seed}"] = rewards(result.metrics())
            score(f"{arm}-{seed}", result.model)
            lap("evaluate")
    facts = {
        **data["sizes"],
        **{k: v for k, v in made.items() if not isinstance(v, Path)},
        "sft": {"lr": args.sft_lr, "epochs": args.sft_epochs},
        "grpo": {
            "lr": args.grpo_lr,
            "beta": args.grpo_beta,
            "steps": args.grpo_steps,
            "prompts": args.grpo_prompts,
            "generations": args.grpo_generations,
        },
    }
    import torch

    head = (
        f"bench_learning: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} "
        f"{platform.processor() or ''}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"(1 thread), curate {curate.__version__}, seeds {args.seeds}"
        f"{' (quick)' if args.quick else ''}, total {sum(times.values()):.0f} s\n"
    )
    text = head + "\n" + report(scores, grpo_rewards, args.seeds, facts, times)
    (out / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
