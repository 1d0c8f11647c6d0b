"""DeepScaleR-style pool curation: read several problem pools, keep the problems
whose answers can be graded, drop exact, near (MinHash) and semantic (MiniLM at
cosine 0.9, as DeepScaleR) duplicates across pools, and drop problems that hold
a benchmark problem (every bundled benchmark: AIME, AMC, MATH-500, GSM8K,
Minerva, OlympiadBench, HMMT, the Qwen2.5-Math evaluation sets).

    curate run recipes/deepscaler.py --out runs/demo            # bundled demo pool
    CURATE_POOL=shared curate run recipes/deepscaler.py --out runs/full   # ../shared/data

The run ends with a verl RL export and its dataset card in ``runs/demo/export/verl/``
(``data/train-*.parquet``, ``README.md``, ``plots/``), as DeepScaleR trained with verl.
Then: ``curate decontam-report runs/demo`` and ``curate sql runs/demo "..."``.
"""

import os
from pathlib import Path

import curate

ROOT = Path(__file__).resolve().parents[1]
POOL = os.environ.get("CURATE_POOL", "demo")

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
else:
    raise SystemExit(f"CURATE_POOL={POOL!r}: expected 'demo' or 'shared'")

recipe = curate.Recipe(
    "deepscaler",
    sources=sources,
    stages=[
        curate.RequireGradable(),
        curate.ExactDedup(),
        curate.MinHashDedup(),
        curate.SemanticDedup(threshold=0.9),
        curate.Decontaminate(benchmarks="all"),
    ],
    # verl's RL format, as DeepScaleR trained with verl: runs/<out>/export/verl/
    exports=[curate.ExportOptions(format="verl")],
)
