"""JiuZhang3.0's loop: distil a teacher's problem writing into a small synthesis model,
boost it with the texts whose problems help most, synthesize at scale, clean what was made.

1. **KD round 1** (this file's ``recipe``): the teacher writes a problem and its solution
   from each of a random sample of texts (`curate.Synthesize`: an education stage per text,
   the text cut to its first characters), cleaned (`curate.RequireGradable`, exact dedup).
2. **Synthesis model** (`then`): the small model is fine-tuned on those (prompt, output)
   pairs (`curate.synth.kd_pairs`; preset ``jiuzhang-synth``: 1e-5, cosine, 5 epochs, batch
   32, length 2,048).
3. **Boosting**: the small model writes problems from other texts; `curate.InfluenceSelect`
   (LESS) scores them by gradient influence on the downstream target; the teacher writes
   again from the texts of the best ones (KD round 2); the small model is fine-tuned again
   on both rounds.
4. **Mass synthesis**: the boosted model writes from the whole corpus at temperature 1.0;
   the new problems join a pool and are cleaned: gradable answers, exact, MinHash and
   embedding dedup (within the synthetic set and against the pool, which comes first and
   so keeps its rows), and decontamination against the benchmarks and against the source
   texts themselves (a "new" problem that copies its text is not new). Then SFT and RL
   shards. (The teacher's problems go through the same checks before the small model
   learns from them.)

Every synthesized row carries its lineage (text id and URL, model, education stage,
prompt version, sample) in ``meta``; ``out/summary.json`` counts what each cleaning stage
removed, and the teacher calls, tokens and estimated cost of each round.

On a CPU (the default), at toy scale, with no download, in a few minutes:
- texts: the 160 bundled math.SE / MathOverflow pages (``data/demo/math_texts.jsonl``,
  CC BY-SA), cut to 100 characters and a short prompt (the toy models read 512 tokens);
- teacher: `curate.toy_teacher.ToyTeacher`, a scripted stand-in for GPT-4 that writes
  `curate.toy` problems from the numbers in a text and plants refusals, truncations, empty
  and foreign-language outputs, MATH-500 copies, repeats and copies of the text;
- small model: `curate.toy`'s addition model (trained in seconds), fine-tuned for real with
  TRL (at a toy's learning rate, 1e-3 for 60 epochs) and sampled at temperature 0.7 with
  transformers;
- downstream target: 16 two-digit additions; the pool: 200 toy problems.

::

    curate run recipes/jiuzhang.py --out runs/jiuzhang-toy

``CURATE_TOY_SCALE=tiny`` shrinks it further (tests). With real models, by changing
names (a GPU assumed): the teacher behind an OpenAI-compatible server, the small model
on vLLM, a corpus of math texts, a downstream target and the pool to join::

    CURATE_TEACHER=gpt-4o CURATE_TEACHER_URL=https://api.openai.com/v1 \\
    CURATE_SYNTH_MODEL=deepseek-ai/deepseek-math-7b-base CURATE_TEXTS=texts.jsonl \\
    CURATE_POOL=pool.jsonl curate run recipes/jiuzhang.py --out runs/jiuzhang
"""

import json
import os
from pathlib import Path

import curate
import curate.io
from curate.decontam import bundled, register_benchmark
from curate.synth import Prompts, Synthesize, kd_pairs

ROOT = Path(__file__).resolve().parents[1]
TINY = os.environ.get("CURATE_TOY_SCALE", "") == "tiny"
TEACHER = os.environ.get("CURATE_TEACHER", "toy")
TOY = TEACHER == "toy"
TEXTS = Path(os.environ.get("CURATE_TEXTS", ROOT / "data" / "demo" / "math_texts.jsonl"))

texts = curate.read(TEXTS, kind="documents", source="texts", license="CC-BY-SA-4.0")

if TOY:
    from curate.toy import toy_model, toy_problems, unseen_problems
    from curate.toy_teacher import ToyTeacher

    data = ROOT / "runs" / "jiuzhang_toy"
    teacher = ToyTeacher(benchmark=0.05, repeat=0.08, copy=0.04)
    small = str(toy_model(steps=600))  # the small model, and the solver whose gradients count
    prompts = Prompts(
        template="Write a new math problem for {audience}, from the content, and solve it.\n"
        "## Math content\n{text}\n## New problem\n",
        stages={"grade_school": "a grade school student", "middle_school": "a middle schooler",
                "high_school": "a high school student", "amc_8": "an AMC 8 contestant"},
        max_chars=100,
    )  # fmt: skip
    pool_rows = toy_problems(200, seed=5)
    target_rows = unseen_problems(pool_rows, 16, seed=6, levels=[2], ops=["+"])
    pool = curate.read(curate.io.write_jsonl(pool_rows, data / "pool.jsonl"), source="pool")
    target = str(curate.io.write_jsonl(target_rows, data / "target.jsonl"))
    sizes = dict(kd=80, candidates=40, boost=8, mass=48) if TINY else (
        dict(kd=100, candidates=None, boost=15, mass=None))  # fmt: skip
    SAMPLING = curate.Sampling(temperature=1.0, top_p=1.0, max_tokens=64)
    STUDENT = curate.Sampling(temperature=0.7, top_p=1.0, max_tokens=64)  # a toy is noisier
    # a toy model learns the output's form ("New problem: ... Solution: ...", bytes to its
    # tokenizer) in a few hundred steps at a high rate (3e-3 left one run's model writing
    # garbage); JiuZhang's 1e-5 is for a 7B model
    SFT = dict(preset="jiuzhang-synth", learning_rate=1e-3, epochs=60, global_batch=16,
               micro_batch=16, max_length=384, threads=1)  # fmt: skip

    def student(path: str, label: str) -> curate.Generator:
        return curate.HFGenerator(path, label=label, threads=1, batch_size=32)

    influence = dict(threads=1, max_length=128, warmup_overrides={
        "learning_rate": 1e-3, "global_batch": 16, "micro_batch": 8},
        lora={"r": 8, "lora_alpha": 32, "lora_dropout": 0.1,
              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]})  # fmt: skip
else:
    small = os.environ.get("CURATE_SYNTH_MODEL", "")
    if not small or "CURATE_POOL" not in os.environ:
        raise SystemExit("set CURATE_SYNTH_MODEL (the small model) and CURATE_POOL (a pool)")
    teacher = curate.OpenAIGenerator(
        TEACHER, base_url=os.environ.get("CURATE_TEACHER_URL", "http://127.0.0.1:8000/v1")
    )
    prompts = Prompts()  # the eight education stages, texts cut to 1,000 characters
    pool = curate.read(os.environ["CURATE_POOL"], source="pool")
    target = os.environ.get("CURATE_TARGET", "math500")
    sizes = dict(kd=10_000, candidates=100_000, boost=5_000, mass=None)
    SAMPLING = STUDENT = curate.Sampling(temperature=1.0, top_p=1.0, max_tokens=2048)
    SFT = dict(preset="jiuzhang-synth")

    def student(path: str, label: str) -> curate.Generator:
        return curate.VLLMGenerator(path, label=label)

    influence = dict(device="cuda", max_length=2048)


# "New" problems that copy their text: decontaminate against what the prompts showed (each
# text cut to max_chars; against the whole text a copy of its start covers too little of it)
seen = [{"problem": t[: prompts.max_chars]} for t in texts.frame()["text"].to_list() if t]
register_benchmark(
    "source-texts", curate.io.write_jsonl(seen, ROOT / "runs" / "jiuzhang_seen.jsonl")
)


def synthesize(name: str, model: curate.Generator, **choose: object) -> Synthesize:
    sampling = SAMPLING if model is teacher else STUDENT
    return Synthesize(texts, model, name=name, prompts=prompts, sampling=sampling, **choose)


BENCHMARKS = [*bundled(), "source-texts"]


def kd_stages() -> list[curate.Stage]:
    """What the teacher's problems go through before the small model learns from them."""
    return [curate.RequireGradable(), curate.ExactDedup(),
            curate.Decontaminate(benchmarks=BENCHMARKS)]  # fmt: skip


recipe = curate.Recipe(
    "jiuzhang-kd1", sources=[synthesize("kd1", teacher, sample=sizes["kd"])], stages=kd_stages()
)


def train_synthesizer(runs: list[curate.Run], out: Path) -> str:
    """Fine-tune the small model on the teacher's kept problems of ``runs``."""
    import curate.train

    pairs = [r for run in runs for r in kd_pairs(run).iter_rows(named=True)]
    rows = [{"problem": r["prompt"], "solution": r["completion"], "text_id": r["text_id"]}
            for r in pairs]  # fmt: skip
    kd = curate.read(curate.io.write_jsonl(rows, out / "kd.jsonl"), source="kd",
                     instructions="keep")  # fmt: skip
    run = curate.Recipe(out.name, [kd]).run(out / "run", progress=False)
    export = curate.export_run(run, out / "sft", format="sft", template="{problem}",
                               completions="solutions")  # fmt: skip
    result = curate.train.sft(export.out, small, out / "train", progress=False, **SFT)
    return str(result.model)


def then(run: curate.Run, out: Path) -> None:
    out = Path(out)
    synth1 = train_synthesizer([run], out / "synth1")

    # Boosting: the texts whose small-model problems help the target most go to the teacher.
    kd_texts = tuple(recipe.sources[0].chosen(recipe.seed)["id"])  # every text the teacher saw
    candidates = curate.Recipe("jiuzhang-candidates", [
        synthesize("candidates", student(synth1, "synth1"), exclude=kd_texts,
                   sample=sizes["candidates"])],
        [curate.RequireGradable(),
         curate.InfluenceSelect(model=small, target=target, budget=sizes["boost"], **influence)],
    ).run(out / "candidates", progress=False)  # fmt: skip
    chosen = tuple(kd_pairs(candidates)["text_id"].unique(maintain_order=True))
    kd2 = curate.Recipe("jiuzhang-kd2", [synthesize("kd2", teacher, ids=chosen)],
                        kd_stages()).run(out / "kd2", progress=False)  # fmt: skip
    synth2 = train_synthesizer([run, kd2], out / "synth2")

    # Mass synthesis with the boosted model, joined to the pool and cleaned.
    final = curate.Recipe(
        "jiuzhang",
        sources=[pool, synthesize("synthetic", student(synth2, "synth2"), sample=sizes["mass"])],
        stages=[curate.RequireGradable(), curate.ExactDedup(), curate.MinHashDedup(),
                curate.SemanticDedup(threshold=0.95), curate.Decontaminate(benchmarks=BENCHMARKS)],
        exports=[curate.ExportOptions(format="sft", completions="solutions"),
                 curate.ExportOptions(format="rl")],
    ).run(out / "final", progress=False)  # fmt: skip
    runs = {"kd1": run, "kd2": kd2, "final": final}
    summary = {
        "synthesis": {  # per round: teacher or small-model calls, tokens, cost, outputs
            "kd1": run.manifest["sources"][0]["stats"],
            "candidates": candidates.manifest["sources"][0]["stats"],
            "kd2": kd2.manifest["sources"][0]["stats"],
            "final": final.manifest["sources"][1]["stats"],
        },
        "boost": {**candidates.stages[-1].stats, "texts_chosen": len(chosen)},
        "removed": {  # synthesized rows each run removed, by stage and reason
            name: dict(r.sql(
                "SELECT stage || ':' || reason, count(*) FROM rejects WHERE source != 'pool' "
                "GROUP BY 1 ORDER BY 1").rows())
            for name, r in runs.items()
        },
        "kept": dict(final.sql("SELECT source, count(*) FROM problems GROUP BY 1").rows()),
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["removed"], indent=2))
    print(f"\nwritten: {out / 'summary.json'}, shards under {out / 'final' / 'export'}")
