"""DeepScaleR, from problem pools to a GRPO-trained model.

Curation (``recipe``): read several problem pools, keep the problems whose answers can be
graded, drop exact, near (MinHash) and semantic (MiniLM at cosine 0.9, as DeepScaleR)
duplicates across pools, and drop problems that hold a benchmark problem (every bundled
benchmark: AIME, AMC, MATH-500, GSM8K, Minerva, OlympiadBench, HMMT, the Qwen2.5-Math
evaluation sets).

    curate run recipes/deepscaler.py --out runs/demo            # bundled demo pool
    CURATE_POOL=shared curate run recipes/deepscaler.py --out runs/full   # ../shared/data

The run ends with a verl RL export and its dataset card in ``runs/demo/export/verl/``
(``data/train-*.parquet``, ``README.md``, ``plots/``), as DeepScaleR trained with verl.
Then: ``curate decontam-report runs/demo`` and ``curate sql runs/demo "..."``.

Training (``then``, which ``curate run`` calls after the recipe; ``--no-then`` skips it):
GRPO with the ``deepscaler`` preset (`curate.train.presets`: 0/1 verifier reward, learning
rate 1e-6, 128 prompts per step in two updates of 64, KL 0.001, temperature 0.6, context
lengthening 8K -> 16K -> 24K over 1750 steps) on the verl export, with an evaluation before
and after; the table is printed and written to ``OUT/then.json`` (the model in
``OUT/train/grpo/model/``, each evaluation in ``OUT/eval/<before|after>/``). For the
``demo`` and ``shared`` pools it trains only when ``CURATE_MODEL`` names a model (else it
prints how), so the curation alone stays as fast as it was. On a GPU, with DeepScaleR's
model, vLLM generating inside TRL (``vllm="colocate"``), evaluated on the bundled AIME 2024
and MATH-500 (16 samples, temperature 0.6, 32K tokens)::

    export CURATE_MODEL=deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B
    CURATE_POOL=shared curate run recipes/deepscaler.py --out runs/deepscaler-gpu
    # a smoke test of the same run: the first 20 steps only
    CURATE_MAX_STEPS=20 CURATE_POOL=shared curate run recipes/deepscaler.py --out runs/ds-smoke

(DeepScaleR's 1750 steps took about 3,800 A100 hours: one GPU runs a few steps an hour.)

At toy scale on a CPU (``CURATE_POOL=toy``), with no download: toy arithmetic problems
(`curate.toy`, one- and two-digit operands) through RequireGradable and ExactDedup only
(MinHash and MiniLM would call "What is 37 + 48?" and "What is 37 + 49?" duplicates, and no
benchmark holds a toy problem, so the other stages are left out), GRPO of the weak toy model
with the ``deepscaler`` preset on a toy schedule (two lengthening stages, 40 then 56 tokens,
8 samples per prompt, 10 steps each, 4 prompts per step, learning rate 1e-4, temperature
1.0), evaluated on single-digit toy problems that are not in the pool (``OUT/heldout.jsonl``,
4 samples each), in under a minute on two cores (40 s measured; the first time about 20 s
more, to train the toy model)::

    CURATE_POOL=toy curate run recipes/deepscaler.py --out runs/deepscaler-toy
    curate sql runs/deepscaler-toy/train/grpo "SELECT step, reward, groups_all_equal FROM metrics"

Expect the toy numbers to move by noise only: 20 steps of 32 samples are far too few for a
model that solves about one toy problem in ten to learn much (a learning rate of 5e-4 made
it worse). ``CURATE_TOY_SCALE=tiny`` shrinks it further (tests). A measured held-out gain
from GRPO on a CPU (+17 points over 3 seeds, 150 steps on the problems the model solves
sometimes) is in ``benchmarks/bench_learning.py --task columns`` and ``benchmarks/RESULTS.md``.

From Python, ``then`` is a plain function::

    CURATE_POOL=toy python -c "import runpy; ns = runpy.run_path('recipes/deepscaler.py'); \\
        ns['then'](ns['recipe'].run('runs/deepscaler-toy'), 'runs/deepscaler-toy')"
"""

import json
import os
from pathlib import Path

import curate
import curate.distill
import curate.io

ROOT = Path(__file__).resolve().parents[1]
POOL = os.environ.get("CURATE_POOL", "demo")
TINY = os.environ.get("CURATE_TOY_SCALE", "") == "tiny"  # fewer problems, samples, steps
MODEL = os.environ.get("CURATE_MODEL", "toy-weak" if POOL == "toy" else "")
MAX_STEPS = int(os.environ["CURATE_MAX_STEPS"]) if os.environ.get("CURATE_MAX_STEPS") else None
TOY = POOL == "toy"


if POOL == "demo":
    data = ROOT / "data" / "demo"
    sources = [
        curate.read(data / "math_train.jsonl", source="math", license="Apache-2.0"),
        curate.read(
            data / "gsm8k_train.jsonl",
            source="gsm8k",
            problem="question",
            solution="answer",
            license="MIT",
        ),
        curate.read(data / "aime_1983_2023.json", source="aime", license="MIT"),
        curate.read(data / "dapo_math_17k.parquet", source="dapo", license="Apache-2.0"),
        curate.read(data / "deepscaler_sample.parquet", source="deepscaler", license="Apache-2.0"),
    ]
elif POOL == "shared":
    data = ROOT.parent / "shared" / "data"
    sources = [
        curate.read(data / "hendrycks_math" / "train.jsonl", source="math"),
        curate.read(
            data / "grade_school_math" / "train.jsonl",
            source="gsm8k",
            problem="question",
            solution="answer",
        ),
        curate.read(data / "rllm" / "train" / "aime.json", source="aime"),
        curate.read(data / "svs_dapo" / "dapo_math_17k.parquet", source="dapo"),
        curate.read(data / "deepscaler_partial" / "deepscaler_train.parquet", source="deepscaler"),
    ]
elif POOL == "toy":
    from curate.toy import toy_problems

    TOY_POOL = toy_problems(40 if TINY else 200, seed=0, levels=[1, 2])
    path = curate.io.write_jsonl(TOY_POOL, ROOT / "runs" / f"toy_rl_pool_{len(TOY_POOL)}.jsonl")
    sources = [curate.read(path, source="toy", license="MIT")]
else:
    raise SystemExit(f"CURATE_POOL={POOL!r}: expected 'demo', 'shared' or 'toy'")

if TOY:
    stages = [curate.RequireGradable(), curate.ExactDedup()]
    template = "{problem}"  # the toy models were trained on bare problems
else:
    stages = [
        curate.RequireGradable(),
        curate.ExactDedup(),
        curate.MinHashDedup(),
        curate.SemanticDedup(threshold=0.9),
        curate.Decontaminate(benchmarks="all"),
    ]
    template = curate.distill.DEFAULT_TEMPLATE  # DeepScaleR's "Let's think step by step ..."

recipe = curate.Recipe(
    "deepscaler",
    sources=sources,
    stages=stages,
    # verl's RL format, as DeepScaleR trained with verl: runs/<out>/export/verl/
    exports=[curate.ExportOptions(format="verl", template=None if not TOY else template)],
)

# ---------------------------------------------------------------- after curation: train, eval

if TOY:
    # the deepscaler preset on a toy schedule: two short lengthening stages
    GRPO = dict(
        stages=[(40, 4, 2), (56, 4, 2)] if TINY else [(40, 8, 10), (56, 8, 10)],
        prompts_per_step=4, updates_per_step=1, micro_batch=16, learning_rate=1e-4,
        temperature=1.0,
    )  # fmt: skip
    EVAL = dict(n=2 if TINY else 4, max_tokens=48, threads=1)
else:
    GRPO = dict(vllm="colocate")
    EVAL = dict(n=16, max_tokens=32768, engine="vllm")


def model_path(name: str) -> str:
    """A toy model's folder (trained on first use, then cached), else the name itself."""
    if name.startswith("toy-"):
        from curate.toy import toy_model

        return str(toy_model(steps={"toy-weak": 200, "toy-strong": 500}.get(name, 600)))
    return name


def evaluate(model: str, name: str, sets: list[Path] | list[str], out: Path) -> dict:
    """pass@1 and its 95% interval per benchmark, for ``model`` (a name or a folder)."""
    result = curate.evaluate(model, sets, out=out / "eval" / name, template=template, **EVAL)
    print(f"\n{name}:\n{result.table()}")
    return result.pass1()


def then(run: curate.Run, out: Path) -> None:
    """GRPO with the deepscaler preset on the verl export, evaluated before and after."""
    if not MODEL:
        print(
            "then: no training (CURATE_MODEL is not set); to train with GRPO on a GPU: "
            "CURATE_MODEL=deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B curate run "
            "recipes/deepscaler.py --out OUT; on a CPU: CURATE_POOL=toy curate run ..."
        )
        return
    import curate.train

    out = Path(out)
    if TOY:
        from curate.toy import unseen_problems

        fresh = unseen_problems(TOY_POOL, 20 if TINY else 100)
        sets: list[Path] | list[str] = [curate.io.write_jsonl(fresh, out / "heldout.jsonl")]
    else:
        sets = ["aime24", "math500"]
    model = model_path(MODEL)
    scores = {"before": evaluate(model, "before", sets, out)}
    result = curate.train.grpo(
        out / "export" / "verl", model, out / "train" / "grpo", preset="deepscaler",
        max_steps=MAX_STEPS, threads=1 if TOY else None, progress=False, **GRPO,
    )  # fmt: skip
    scores["after"] = evaluate(str(result.model), "after", sets, out)
    metrics = result.metrics()
    names = list(scores["before"])
    print("\npass@1 (%, ±95% CI)   " + "".join(f"{b:>16}" for b in names))
    for label, row in scores.items():
        cells = "".join(
            f"{100 * row[b]['pass@1']:>9.1f} ± {100 * row[b]['ci95']:4.1f}" for b in names
        )
        print(f"{label:<22}{cells}")
    summary = {
        "model": MODEL,
        "models": {"before": model, "after": str(result.model)},
        "steps": result.steps,
        "mean_reward": metrics["reward"].mean() if "reward" in metrics.columns else None,
        "warnings": list(result.warnings),
        "eval": {k: v for k, v in EVAL.items() if k != "engine"},
        "scores": scores,
    }
    (out / "then.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten: {out / 'then.json'}")
