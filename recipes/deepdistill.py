"""DeepDistill's flow (AM-DeepSeek-Distilled-40M), from a pool of problems to a trained,
evaluated student.

Curation (``recipe``): every problem answered several times by several models of increasing
strength, every response verified, problems graded by their per-model pass rates and the
coefficient of variation (CV) of the verify scores, then DeepDistill's two selections:
Stage I (drop what nothing solves, keep only the passing responses where the models
disagree, keep part of the easy problems) and Stage II (the half of those with the highest
CV, one passing response each: ``fraction=0.5`` is this recipe's choice, the paper gives
no number).

Training (``then``, which ``curate run`` calls after the recipe; ``--no-then`` skips it):
the student is evaluated on held-out problems, fine-tuned on the Stage I responses
(``preset="deepdistill-stage1"``: learning rate 8e-5, packing), evaluated, annealed on the
Stage II responses (``preset="deepdistill-stage2"``: 8e-6, 2 epochs) from the Stage I
model, and evaluated again; the before/after table is printed and written to
``OUT/then.json``::

    OUT/export/sft/          the Stage I responses, SFT shards (OUT/export/sft-stage2: Stage II)
    OUT/train/stage1/model/  the student after Stage I (stage2/model: after Stage II)
    OUT/eval/<model>/        samples.parquet and summary.json of each evaluation
    OUT/then.json            pass@1 (with its 95% interval) per benchmark and model

On a CPU, with no download, it runs on toy models trained in seconds (`curate.toy`: a weak
and a stronger 2-layer Qwen2 on an arithmetic task) and transformers, in under a minute on
two cores (20 s measured with the toy models cached on idle cores; the first time about 90 s
more, to train the two toy models)::

    curate run recipes/deepdistill.py --out runs/deepdistill
    curate sql runs/deepdistill "SELECT difficulty, count(*), avg(cv) FROM problems GROUP BY 1"
    curate sql runs/deepdistill "SELECT reason, count(*) FROM rejects GROUP BY 1"
    curate sql runs/deepdistill/train/stage1 "SELECT step, loss FROM metrics"

At toy scale the student is ``toy-weak``, the held-out problems are single-digit toy problems
that are not in the pool (``OUT/heldout.jsonl``), and the problems trained on are evaluated
too (``trained``, from ``OUT/trained.jsonl``). Expect ``trained`` to rise and ``heldout`` to
move little: the toy task is learnt fact by fact (``4 + 7`` teaches nothing about ``5 + 2``),
so the toy run shows that the loop works, not that distillation helps. The toy settings:
learning rates 1e-3 and 2e-4 (the presets' are for billions of parameters), batches of 16,
128 tokens, no packing (TRL's padding-free packing needs flash attention to keep packed
sequences apart, and a CPU has none), 4 samples per held-out problem.
``CURATE_TOY_SCALE=tiny`` shrinks it further (40 problems, 2 samples, a few steps: tests).

On a GPU, with the paper's models and vLLM, change the model names only::

    R1=deepseek-ai/DeepSeek-R1-Distill-Qwen
    export CURATE_MODELS=$R1-1.5B,$R1-7B,deepseek-ai/DeepSeek-R1
    export CURATE_STUDENT=Qwen/Qwen2.5-7B        # default: the first of CURATE_MODELS
    curate run recipes/deepdistill.py --out runs/deepdistill-gpu
    curate run recipes/deepdistill.py --out runs/deepdistill-gpu --no-then   # curation only

(names that are not ``toy-*`` run on vLLM over the bundled MATH and AIME pools, with
R1's sampling settings and 32K tokens; ``CURATE_ENGINE=hf|vllm|openai`` picks the backend,
``CURATE_BASE_URL`` the server for ``openai``. The student is trained with the presets as
they are and evaluated on the bundled AIME 2024 and MATH-500 with DeepScaleR's protocol:
16 samples, temperature 0.6, 32K tokens, through vLLM. DeepDistill trained Qwen2.5 base
models; a student without a chat template needs one.)

From Python, ``then`` is a plain function::

    python -c "import runpy; ns = runpy.run_path('recipes/deepdistill.py'); \\
        ns['then'](ns['recipe'].run('runs/deepdistill'), 'runs/deepdistill')"
"""

import json
import os
from pathlib import Path

import curate
import curate.distill
import curate.io
from curate.generate import Sampling

ROOT = Path(__file__).resolve().parents[1]
MODELS = os.environ.get("CURATE_MODELS", "toy-weak,toy-strong").split(",")
TOY_STEPS = {"toy-weak": 200, "toy-strong": 500}  # training steps: the stronger, the longer
TOY = all(m.startswith("toy-") for m in MODELS)
TINY = os.environ.get("CURATE_TOY_SCALE", "") == "tiny"  # fewer problems, samples, steps
ENGINE = os.environ.get("CURATE_ENGINE", "hf" if TOY else "vllm")
STUDENT = os.environ.get("CURATE_STUDENT", "toy-weak" if TOY else MODELS[0])


def model_path(name: str) -> str:
    """A toy model's folder (trained on first use, then cached), else the name itself."""
    if name.startswith("toy-"):
        from curate.toy import STEPS, toy_model

        return str(toy_model(steps=TOY_STEPS.get(name, STEPS)))
    return name


def generator(name: str) -> curate.Generator:
    path, label = model_path(name), name.rsplit("/", 1)[-1]
    if ENGINE == "hf":
        # one torch thread per toy model: on a busy small CPU more threads only contend
        return curate.HFGenerator(path, label=label, threads=1 if TOY else None)
    if ENGINE == "vllm":
        return curate.VLLMGenerator(
            path, label=label, gpu_memory_utilization=0.9 if not TOY else 0.2
        )
    if ENGINE == "openai":
        base = os.environ.get("CURATE_BASE_URL", "http://127.0.0.1:8000/v1")
        return curate.OpenAIGenerator(path, label=label, base_url=base)
    raise SystemExit(f"CURATE_ENGINE={ENGINE!r}: expected hf, vllm or openai")


if TOY:
    from curate.toy import toy_problems

    POOL = toy_problems(40 if TINY else 120, seed=0)
    pool = curate.io.write_jsonl(POOL, ROOT / "runs" / f"toy_pool_{len(POOL)}.jsonl")
    sources = [curate.read(pool, source="toy")]
    sampling = Sampling(temperature=0.6, top_p=0.95, max_tokens=48)
    template = "{problem}"  # the toy models were trained on bare problems
else:
    data = ROOT / "data" / "demo"
    sources = [
        curate.read(data / "math_train.jsonl", source="math"),
        curate.read(data / "aime_1983_2023.json", source="aime"),
    ]
    sampling = Sampling(temperature=0.6, top_p=0.95, max_tokens=32768)
    template = curate.distill.DEFAULT_TEMPLATE  # DeepScaleR's "Let's think step by step ..."

recipe = curate.Recipe(
    "deepdistill",
    sources=sources,
    stages=[
        curate.RequireGradable(),
        curate.ExactDedup(),
        curate.Distill(
            tuple(generator(m) for m in MODELS), n=4, sampling=sampling, template=template
        ),
        curate.Grade(pass_at=(1, 4)),
        curate.DeepDistillStageI(score_threshold=0.9, cv_threshold=0.0, easy_keep=0.5),
        curate.DeepDistillStageII(fraction=0.5),
    ],
)

# ---------------------------------------------------------------- after curation: train, eval

if TOY:
    # learning rates for a 0.33M-parameter model; the rest as the presets say where it fits
    STAGE1 = dict(learning_rate=1e-3, global_batch=16, micro_batch=16, max_length=128,
                  packing=False, epochs=10)  # fmt: skip
    STAGE2 = dict(learning_rate=2e-4, global_batch=16, micro_batch=16, max_length=128, epochs=4)
    EVAL = dict(n=2 if TINY else 4, max_tokens=48, threads=1)
    MAX_STEPS: int | None = 4 if TINY else None
else:
    STAGE1, STAGE2, EVAL, MAX_STEPS = {}, {}, dict(n=16, max_tokens=32768, engine="vllm"), None


def benchmarks(run: curate.Run, out: Path) -> list[Path] | list[str]:
    """Toy: held-out single-digit problems not in the pool, and the problems trained on.
    Otherwise the bundled AIME 2024 and MATH-500."""
    if not TOY:
        return ["aime24", "math500"]
    from curate.toy import unseen_problems

    fresh = unseen_problems(POOL, 20 if TINY else 100)
    trained = run.as_of("deep_distill_stage_i").table("problems").collect()
    rows = trained.select("id", "problem", "answer").to_dicts()
    return [
        curate.io.write_jsonl(fresh, out / "heldout.jsonl"),
        curate.io.write_jsonl(rows, out / "trained.jsonl"),
    ]


def evaluate(model: str, name: str, sets: list[Path] | list[str], out: Path) -> dict:
    """pass@1 and its 95% interval per benchmark, for ``model`` (a name or a folder)."""
    result = curate.evaluate(model, sets, out=out / "eval" / name, template=template, **EVAL)
    print(f"\n{name}:\n{result.table()}")
    return result.pass1()


def then(run: curate.Run, out: Path) -> None:
    """SFT Stage I and Stage II on the selected responses, evaluated before and after."""
    import curate.train

    out = Path(out)
    threads = 1 if TOY else None
    stage1 = curate.export_run(
        run.as_of("deep_distill_stage_i"), out / "export" / "sft", format="sft",
        template=template,
    )  # fmt: skip
    stage2 = curate.export_run(run, out / "export" / "sft-stage2", format="sft", template=template)
    print(f"SFT rows: Stage I {stage1.rows['train']}, Stage II {stage2.rows['train']}")
    sets = benchmarks(run, out)
    student = model_path(STUDENT)
    scores = {"before": evaluate(student, "before", sets, out)}
    first = curate.train.sft(
        out / "export" / "sft", student, out / "train" / "stage1",
        preset="deepdistill-stage1", max_steps=MAX_STEPS, threads=threads, progress=False,
        **STAGE1,
    )  # fmt: skip
    scores["stage1"] = evaluate(str(first.model), "stage1", sets, out)
    second = curate.train.sft(
        out / "export" / "sft-stage2", first.model, out / "train" / "stage2",
        preset="deepdistill-stage2", max_steps=MAX_STEPS, threads=threads, progress=False,
        **STAGE2,
    )  # fmt: skip
    scores["stage2"] = evaluate(str(second.model), "stage2", sets, out)
    names = list(scores["before"])
    print("\npass@1 (%, ±95% CI)   " + "".join(f"{b:>16}" for b in names))
    for label, row in scores.items():
        cells = "".join(
            f"{100 * row[b]['pass@1']:>9.1f} ± {100 * row[b]['ci95']:4.1f}" for b in names
        )
        print(f"{label:<22}{cells}")
    summary = {
        "student": STUDENT,
        "models": {"before": student, "stage1": str(first.model), "stage2": str(second.model)},
        "steps": {"stage1": first.steps, "stage2": second.steps},
        "rows": {"stage1": stage1.rows["train"], "stage2": stage2.rows["train"]},
        "eval": {k: v for k, v in EVAL.items() if k != "engine"},
        "scores": scores,
    }
    (out / "then.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten: {out / 'then.json'}")
