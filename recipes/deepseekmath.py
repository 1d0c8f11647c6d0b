"""The data side of the DeepSeekMath corpus: mine math pages from a pool of web pages with an
iterated fastText classifier, clean what was mined, and write pre-training shards.

1. **Mining** (`curate.mine.Mined`, at ingest, kept in ``RUN/mine/iter-N``): a fastText
   classifier (DeepSeekMath's settings: dimension 256, learning rate 0.1, word n-grams up to
   3, minimum count 3, 3 epochs) trained on seed math pages against random pool pages
   scores the pool; the top pages are kept; domains with more than 10% of their pages
   collected are reported; pages under confirmed URL paths join the seeds and the
   classifier is trained again; it stops after 4 iterations or when 98% of what an
   iteration keeps was already collected.
2. **Cleaning**: exact and MinHash near-duplicate pages go, and the segments that hold a
   benchmark's text (DeepSeekMath's 10-gram rule; GSM8K, MATH-500, CMATH and the other
   bundled benchmarks) are cut from the pages (``clean_text``, with the removed spans).
3. **Pre-training shards** (`curate.export.pretrain.PretrainExport`): text and metadata as
   Parquet with token counts, in ``RUN/export/pretrain``.

On a CPU (the default), with no download: the pool is the web pages of
``../shared/data/web_corpus`` (math Q&A from math.stackexchange and MathOverflow,
math-adjacent pages, and general pages from C4 and Common Crawl extracts) when it is
there, else the pages bundled in ``data/demo``; the seeds (OpenWebMath's role) are
math.stackexchange pages, held out of the pool; the confirmed paths are the questions of
MathOverflow and of the proof assistants' site (a person's choice, made once here; point
``CURATE_PATHS`` at a file of your own); tokens are counted with the toy model's tokenizer
(``CURATE_TOKENIZER`` names another)::

    curate run recipes/deepseekmath.py --out runs/deepseekmath
    curate sql runs/deepseekmath/mine/iter-1 "SELECT * FROM domains LIMIT 10"

At scale: ``CURATE_POOL`` (pages: JSONL or Parquet with text and url), ``CURATE_SEEDS``
(e.g. OpenWebMath), ``CURATE_PATHS``, ``CURATE_TOKENIZER=deepseek-ai/deepseek-math-7b-base``,
and ``--engine ray`` to score the pool on a cluster.
"""

import json
import os
import random
from pathlib import Path

import curate
import curate.io
from curate.export.pretrain import PretrainExport
from curate.mine import FastTextOptions, Mined, SegmentDecontaminate

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "web_corpus"
TINY = os.environ.get("CURATE_TOY_SCALE", "") == "tiny"
data = ROOT / "runs" / "deepseekmath_data"


def pages(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


if "CURATE_POOL" in os.environ:
    pool = curate.read(os.environ["CURATE_POOL"], kind="documents", source="pool")
    seeds = curate.read(os.environ["CURATE_SEEDS"], kind="documents", source="seeds")
    options = FastTextOptions()
else:
    if SHARED.is_dir() and not TINY:
        rows = [r for f in sorted(SHARED.glob("*.jsonl")) for r in pages(f)]
    else:  # the bundled pages
        rows = pages(ROOT / "data" / "demo" / "math_texts.jsonl")
        rows += pages(ROOT / "data" / "demo" / "web_pages.jsonl")
    rows = [{"text": r["text"], "url": r.get("url")} for r in rows if r.get("text")]
    math_se = [r for r in rows if "math.stackexchange.com" in (r["url"] or "")]
    held = set(random.Random(0).sample(range(len(math_se)), len(math_se) * 2 // 3))
    seed_rows = [r for i, r in enumerate(math_se) if i in held]
    seed_urls = {r["url"] for r in seed_rows}
    pool_rows = [r for r in rows if r["url"] not in seed_urls]
    pool = curate.read(curate.io.write_jsonl(pool_rows, data / "pool.jsonl"), kind="documents",
                       source="pool")  # fmt: skip
    seeds = curate.read(curate.io.write_jsonl(seed_rows, data / "seeds.jsonl"), kind="documents",
                        source="seeds")  # fmt: skip
    # DeepSeekMath's 3 epochs are for 500K seed pages; a few hundred need more passes
    options = FastTextOptions(epoch=25)

paths = os.environ.get("CURATE_PATHS") or (
    "mathoverflow.net/questions",
    "proofassistants.stackexchange.com/questions",
)
tokenizer = os.environ.get("CURATE_TOKENIZER")
if tokenizer is None:
    from curate.toy import toy_model

    tokenizer = str(toy_model(steps=600))

recipe = curate.Recipe(
    "deepseekmath",
    sources=[Mined(pool, seeds, iterations=2 if TINY else 4, paths=paths, options=options)],
    stages=[curate.ExactDedup(), curate.MinHashDedup(column="text"), SegmentDecontaminate()],
    exports=[PretrainExport(tokenizer=tokenizer)],
)
