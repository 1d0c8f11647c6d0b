"""Select SFT data by gradient influence on a target (LESS, as JiuZhang3.0 picks its
high-value data), then fine-tune on the selection and evaluate before and after.

The stage is `curate.InfluenceSelect`. ``CURATE_METHOD=embedding`` or ``random`` runs
one of its baselines at the same budget, so the same recipe compares them.

On a GPU, with the papers' kind of models: the MATH and GSM8K training pools of
``../shared/data`` (``CURATE_POOL=shared``; the stage scores (problem, solution) pairs, and
DAPO has no solutions), MATH-500 as the target, LESS's settings (a
LoRA warm-up on 5% of the pool, rank 128, 4 epochs, projection to 8,192), a 5% budget,
then SFT of the model on the selection (DeepDistill's Stage I preset) and MATH-500 with
vLLM before and after::

    CURATE_POOL=shared CURATE_MODEL=Qwen/Qwen2.5-Math-1.5B curate run recipes/less.py \\
        --out runs/less-gpu

On a CPU (``CURATE_POOL=toy``, the default), with no download, the toy version of
``benchmarks/bench_influence.py``:
- the pool holds three `curate.toy` skills: column additions, direct additions and
  direct subtractions, 40% of each with a wrong answer;
- the target is 16 clean column additions;
- the model is the column task's weak toy model.

It keeps 10% of the pool, fine-tunes on it and evaluates on held-out column additions, in
about two minutes on two cores::

    curate run recipes/less.py --out runs/less-toy
    CURATE_METHOD=embedding curate run recipes/less.py --out runs/less-toy-rds

``CURATE_TOY_SCALE=tiny`` shrinks it further (tests).
"""

import json
import os
import random
from pathlib import Path

import curate
import curate.io

ROOT = Path(__file__).resolve().parents[1]
POOL = os.environ.get("CURATE_POOL", "toy")
TINY = os.environ.get("CURATE_TOY_SCALE", "") == "tiny"
METHOD = os.environ.get("CURATE_METHOD", "influence")
MODEL = os.environ.get("CURATE_MODEL", "")
TOY = POOL == "toy"

if TOY:
    from curate.toy import toy_model, unseen_problems, wrong_answer

    n = 40 if TINY else 400
    rng = random.Random(0)
    data = ROOT / "runs" / f"less_toy_{n}"
    pools = {  # n distinct problems of each skill, 40% of them with a wrong answer
        "columns": unseen_problems([], n, seed=10, levels=[2], task="columns"),
        "add": unseen_problems([], n, seed=11, levels=[1, 2], ops=["+"]),
        "sub": unseen_problems([], n, seed=12, levels=[1, 2], ops=["-"]),
    }
    for rows in pools.values():
        for i in rng.sample(range(len(rows)), round(0.4 * len(rows))):
            rows[i] = wrong_answer(rows[i], rng)
    target_rows = unseen_problems(pools["columns"], 16, seed=13, levels=[2], task="columns")
    heldout_rows = unseen_problems(
        pools["columns"] + target_rows, 20 if TINY else 200, seed=13, levels=[2], task="columns"
    )
    sources = [
        curate.read(curate.io.write_jsonl(rows, data / f"{skill}.jsonl"), source=skill)
        for skill, rows in pools.items()
    ]
    target = str(curate.io.write_jsonl(target_rows, data / "target.jsonl"))
    heldout = [curate.io.write_jsonl(heldout_rows, data / "heldout.jsonl")]
    model = str(toy_model(steps=600, task="columns"))
    stage = curate.InfluenceSelect(
        model=model, target=target, budget=0.1, method=METHOD, threads=1, max_length=96,
        lora={"r": 8, "lora_alpha": 32, "lora_dropout": 0.1,
              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        warmup_overrides={"learning_rate": 1e-3, "global_batch": 16, "micro_batch": 8},
    )  # fmt: skip
    SFT = dict(learning_rate=1e-3, epochs=2 if TINY else 8, global_batch=16, micro_batch=16,
               max_length=128, packing=False, threads=1)  # fmt: skip
    EVAL = dict(n=2 if TINY else 4, max_tokens=64, threads=1)
    template = "{problem}"  # the toy models were trained on bare problems
elif POOL == "shared":
    if not MODEL:
        raise SystemExit("CURATE_POOL=shared: set CURATE_MODEL (a causal LM; a GPU is assumed)")
    data = ROOT.parent / "shared" / "data"
    sources = [
        curate.read(data / "hendrycks_math" / "train.jsonl", source="math"),
        curate.read(
            data / "grade_school_math" / "train.jsonl",
            source="gsm8k",
            problem="question",
            solution="answer",
        ),
    ]
    model = MODEL
    stage = curate.InfluenceSelect(
        model=model, target="math500", budget=0.05, method=METHOD, device="cuda",
        max_length=2048,
    )  # fmt: skip
    heldout = ["math500"]
    SFT = dict(max_length=16384)
    EVAL = dict(n=16, max_tokens=32768, engine="vllm")
    template = "{problem}"
else:
    raise SystemExit(f"CURATE_POOL={POOL!r}: expected 'toy' or 'shared'")

recipe = curate.Recipe(
    f"less-{METHOD}", sources=[*sources], stages=[curate.RequireGradable(), stage]
)


def evaluate(model: str, name: str, out: Path) -> dict:
    """pass@1 and its 95% interval on the held-out set."""
    result = curate.evaluate(model, heldout, out=out / "eval" / name, template=template, **EVAL)
    print(f"\n{name}:\n{result.table()}")
    return result.pass1()


def then(run: curate.Run, out: Path) -> None:
    """SFT on the selected rows' solutions, evaluated before and after."""
    import curate.train

    out = Path(out)
    export = curate.export_run(run, out / "export" / "sft", format="sft", template=template,
                               completions="solutions")  # fmt: skip
    result = curate.train.sft(export.out, model, out / "train" / "sft",
                              preset="deepdistill-stage1", progress=False, **SFT)  # fmt: skip
    scores = {
        "before": evaluate(model, "before", out),
        "after": evaluate(str(result.model), "after", out),
    }
    made = run.stages[-1].stats
    summary = {"method": METHOD, "selected": made.get("selected"), "scored": made.get("scored"),
               "scores": scores}  # fmt: skip
    (out / "then.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten: {out / 'then.json'}")
