"""DeepDistill's flow (AM-DeepSeek-Distilled-40M): every problem answered several times by
several models of increasing strength, every response verified, problems graded by their
per-model pass rates and the coefficient of variation (CV) of the verify scores, then
DeepDistill's Stage I selection (drop what nothing solves, keep only the passing responses
where the models disagree, keep part of the easy problems).

On a CPU, with no download, it runs on toy models trained in seconds (`curate.toy`: a weak
and a stronger 2-layer Qwen2 on an arithmetic task) and transformers::

    curate run recipes/deepdistill.py --out runs/deepdistill
    curate sql runs/deepdistill "SELECT difficulty, count(*), avg(cv) FROM problems GROUP BY 1"
    curate sql runs/deepdistill "SELECT reason, count(*) FROM rejects GROUP BY 1"

On a GPU, with the paper's models and vLLM, change the model names only::

    R1=deepseek-ai/DeepSeek-R1-Distill-Qwen
    export CURATE_MODELS=$R1-1.5B,$R1-7B,deepseek-ai/DeepSeek-R1
    curate run recipes/deepdistill.py --out runs/deepdistill-gpu

(names that are not ``toy-*`` run on vLLM over the bundled MATH and AIME pools, with
R1's sampling settings and 32K tokens; ``CURATE_ENGINE=hf|vllm|openai`` picks the backend,
``CURATE_BASE_URL`` the server for ``openai``.)
"""

import json
import os
from pathlib import Path

import curate
import curate.distill
from curate.generate import Sampling

ROOT = Path(__file__).resolve().parents[1]
MODELS = os.environ.get("CURATE_MODELS", "toy-weak,toy-strong").split(",")
TOY_STEPS = {"toy-weak": 200, "toy-strong": 500}  # training steps: the stronger, the longer
TOY = all(m.startswith("toy-") for m in MODELS)
ENGINE = os.environ.get("CURATE_ENGINE", "hf" if TOY else "vllm")


def generator(name: str) -> curate.Generator:
    if name.startswith("toy-"):
        from curate.toy import STEPS, toy_model

        path = str(toy_model(steps=TOY_STEPS.get(name, STEPS)))
    else:
        path = name
    label = name.rsplit("/", 1)[-1]
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

    pool = ROOT / "runs" / "toy_pool.jsonl"
    pool.parent.mkdir(parents=True, exist_ok=True)
    rows = toy_problems(120, seed=0)
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
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
    ],
)
