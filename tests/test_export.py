"""Export: every format loaded back the way its consumer loads it (`datasets`, verl's
fields, a chat template), determinism to the byte, shard sizing, splits, edge cases.

The runs are real recipes; the runs with responses use a small scripted `Generator` (a test
double of an inference engine: what is under test is the export of what it wrote).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _engines import Scripted

import curate
from curate.distill import DEFAULT_TEMPLATE
from curate.errors import ConfigError, InputError, RunError
from curate.export import FORMATS, export_run, json_schema, split_draw
from curate.export.formats import FIELDS, MESSAGES, arrow_schema, fields_for, hub_features
from curate.export.shards import build_splits
from curate.generate import Sampling
from curate.responses import read_responses

datasets = pytest.importorskip("datasets")
jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
HOSTILE = [
    "say \"yes\" or 'no'",
    "line one\nline two\r\nthree",
    "---\nkey: value\n---",
    "a | b || c",
    "# heading ## not",
    "{}{{x}}{problem}",
    "\\frac{1}{2} \\\\ \\boxed{3}",
    "ünïcødé ∑ π ≤ 5, 数学, emoji 🧮, rtl שלום",
    "inner  double  spaces",
    "tab\there & <b>html</b> `code` *md* [link](x) ![img](y)",
    "null",
]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def plain_run(tmp: Path) -> curate.Run:
    """Problems with hostile answers and texts, no responses (a deepscaler-like run)."""
    rows = [
        {"problem": f"Problem {i}: {a}", "answer": a, "level": str(i % 5), "subject": "odd"}
        for i, a in enumerate(HOSTILE)
    ]
    rows.append({"problem": "Duplicate?", "answer": "1"})
    rows.append({"problem": "Duplicate?", "answer": "1"})
    pool = _jsonl(tmp / "plain.jsonl", rows)
    return curate.Recipe("plain", [curate.read(pool)], [curate.ExactDedup()]).run(tmp / "plain")


@pytest.fixture(scope="module")
def big_run(tmp: Path) -> curate.Run:
    rows = [
        {"problem": f"Problem {i}: what is {i} + 1?", "answer": str(i + 1)} for i in range(1000)
    ]
    pool = _jsonl(tmp / "big.jsonl", rows)
    return curate.Recipe("big", [curate.read(pool, source="big")], []).run(tmp / "big")


def _sums() -> list[dict[str, Any]]:
    return [
        {"problem": f"What is {a} + {b}?", "answer": str(a + b)} for a in range(4) for b in range(3)
    ]


def _distill() -> curate.Distill:
    return curate.Distill((Scripted("weak", 0.4), Scripted("strong", 0.8)), n=4)


@pytest.fixture(scope="module")
def selected_run(tmp: Path) -> curate.Run:
    """Distill, Grade and DeepDistill Stage I: responses with ``selected`` keys."""
    pool = _jsonl(tmp / "sums.jsonl", _sums())
    stages = [_distill(), curate.Grade(), curate.DeepDistillStageI(easy_keep=1.0)]
    return curate.Recipe("selected", [curate.read(pool)], stages).run(tmp / "selected", workers=1)


@pytest.fixture(scope="module")
def graded_run(tmp: Path) -> curate.Run:
    """Distill twice into one run with other sampling settings (two gen_keys per model in
    the responses cache), then Grade: no ``selected`` column."""
    pool = _jsonl(tmp / "sums2.jsonl", _sums())
    first = curate.Distill(Scripted("weak", 0.4), n=4, sampling=Sampling(temperature=1.0))
    curate.Recipe("graded", [curate.read(pool)], [first]).run(tmp / "graded", workers=1)
    stages = [curate.Distill(Scripted("weak", 0.4), n=4), curate.Grade()]
    return curate.Recipe("graded", [curate.read(pool)], stages).run(tmp / "graded", workers=1)


def _load(out: Path, streaming: bool = False) -> Any:
    return datasets.load_dataset("parquet", data_dir=str(out / "data"), streaming=streaming)


def _features(format: str, columns: Sequence[str]) -> Any:
    return datasets.Features.from_arrow_schema(arrow_schema(fields_for(format, columns)))  # type: ignore[arg-type]


def _shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "data").iterdir())}


# --- schemas -------------------------------------------------------------------------------


def test_checked_in_schemas_match_the_code() -> None:
    for name in FORMATS:
        on_disk = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        assert on_disk == json_schema(name), (
            f"run `python -m curate.export.formats schemas` to regenerate {name}"
        )


def test_hub_features_are_what_datasets_writes() -> None:
    for name in FORMATS:
        schema = arrow_schema(FIELDS[name])
        assert hub_features(schema) == datasets.Features.from_arrow_schema(schema)._to_yaml_list()


# --- verl ----------------------------------------------------------------------------------


def test_verl_rows_are_what_verl_reads(selected_run: curate.Run, tmp: Path) -> None:
    out = tmp / "verl"
    result = export_run(selected_run, out, format="verl", test_fraction=0.3, seed=1)
    problems = selected_run.table("problems").collect()
    ds = _load(out)
    assert set(ds) == {"train", "test"}
    assert (
        ds["train"].num_rows + ds["test"].num_rows
        == problems.height
        == result.rows["train"] + result.rows["test"]
    )
    expected = datasets.Features(
        {
            "data_source": datasets.Value("string"),
            "prompt": datasets.List(
                {"role": datasets.Value("string"), "content": datasets.Value("string")}
            ),
            "ability": datasets.Value("string"),
            "reward_model": {
                "style": datasets.Value("string"),
                "ground_truth": datasets.Value("string"),
            },
            "extra_info": {
                "split": datasets.Value("string"),
                "index": datasets.Value("int64"),
                "id": datasets.Value("string"),
                "answer": datasets.Value("string"),
                "level": datasets.Value("string"),
                "subject": datasets.Value("string"),
                "pass_rate": datasets.Value("float64"),
                "cv": datasets.Value("float64"),
                "difficulty": datasets.Value("string"),
            },
        }
    )
    by_id = {r["id"]: r for r in problems.iter_rows(named=True)}
    for split in ("train", "test"):
        assert ds[split].features == expected
        ids = []
        for i, row in enumerate(ds[split]):
            # what verl's RLHFDataset and reward manager take from a row
            info = row.get("extra_info", {})
            assert info["index"] == i and info["split"] == split
            problem = by_id[info["id"]]
            assert row["data_source"] == problem["source"]
            assert row["prompt"] == [
                {
                    "role": "user",
                    "content": DEFAULT_TEMPLATE.replace("{problem}", problem["problem"]),
                }
            ]
            assert row["prompt"][0]["content"].endswith(
                "Let's think step by step and output the final answer within \\boxed{}."
            )
            assert row["ability"] == "math"
            assert row["reward_model"] == {"style": "rule", "ground_truth": problem["answer"]}
            assert info["answer"] == problem["answer"]
            assert info["pass_rate"] == pytest.approx(problem["pass_rate"])
            assert info["difficulty"] == problem["difficulty"]
            ids.append(info["id"])
        assert ids == sorted(ids)


def test_verl_prompt_renders_through_a_chat_template(plain_run: curate.Run, tmp: Path) -> None:
    tok = _tokenizer()
    out = tmp / "verl-system"
    export_run(plain_run, out, format="verl", system_prompt="Be brief.", template="Q: {problem}")
    for row in _load(out)["train"]:
        text = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        problem = row["prompt"][1]["content"]
        assert problem.startswith("Q: ")
        assert text == (
            f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{problem}<|im_end|>\n"
            "<|im_start|>assistant\n"
        )


def test_parquet_is_plain(plain_run: curate.Run, tmp: Path) -> None:
    out = tmp / "plain-meta"
    export_run(plain_run, out, format="verl")
    for path in (out / "data").iterdir():
        meta = pq.read_metadata(path)
        assert meta.metadata is None  # no pandas, huggingface or ARROW:schema blobs
        assert meta.row_group(0).column(0).compression == "ZSTD"
        schema = pq.read_schema(path)
        assert schema.field("prompt").type == MESSAGES  # plain list<struct>, not large types
        assert pa.types.is_string(schema.field("data_source").type)


# --- rl, sft, trl --------------------------------------------------------------------------


def test_rl_rows_and_grpo_columns(selected_run: curate.Run, tmp: Path) -> None:
    out = tmp / "rl"
    export_run(selected_run, out, format="rl")
    problems = selected_run.table("problems").collect().sort("id")
    train = _load(out)["train"]
    assert train.features == _features("rl", problems.columns)
    assert train.column_names == [
        "id", "prompt", "answer", "problem", "source", "level", "subject", "pass_rate", "cv",
        "difficulty",
    ]  # fmt: skip
    assert train["id"] == problems["id"].to_list()
    assert train["answer"] == problems["answer"].to_list()
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / "rl.schema.json").read_text())
    )
    for row in train:
        validator.validate(row)
        assert row["prompt"][-1]["role"] == "user"  # GRPOTrainer generates from here


def test_sft_round_trips_through_a_chat_template(selected_run: curate.Run, tmp: Path) -> None:
    out = tmp / "sft"
    export_run(selected_run, out, format="sft")
    problems = selected_run.table("problems").collect()
    train = _load(out)["train"]
    assert train.features == _features("sft", problems.columns)
    responses = read_responses(selected_run.path / "responses")
    tok = _tokenizer()
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / "sft.schema.json").read_text())
    )
    keys = []
    for row in train:
        validator.validate(row)
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert assistant["content"].startswith("<think>\n") and "</think>" in assistant["content"]
        stored = responses.filter(
            pl.col("problem_id") == row["problem_id"],
            pl.col("model") == row["model"],
            pl.col("sample") == row["sample"],
        )
        assert stored["correct"].to_list() == [True]
        assert assistant["content"].endswith(stored["text"][0])  # the text, kept whole
        assert user["content"] == json.loads(stored["prompt"][0])[-1]["content"]
        assert row["id"] == f"{row['problem_id']}/{row['model']}/{row['sample']}"
        text = tok.apply_chat_template(row["messages"], tokenize=False)
        assert f"<|im_start|>user\n{user['content']}<|im_end|>" in text
        assert f"<|im_start|>assistant\n{assistant['content']}<|im_end|>" in text
        ids = tok.apply_chat_template(row["messages"], tokenize=True, return_dict=False)
        assert tok.decode(ids) == text  # the rendered chat round-trips through the tokenizer
        keys.append((row["problem_id"], row["model"], row["sample"]))
    assert keys == sorted(keys)
    selected = {
        (r["id"], k["model"], k["sample"])
        for r in problems.iter_rows(named=True)
        for k in r["selected"]
    }
    # the scripted models repeat their texts: each (prompt, completion) pair is kept once,
    # as its first selected response
    chosen = responses.filter(
        pl.struct("problem_id", "model", "sample").map_elements(
            lambda k: (k["problem_id"], k["model"], k["sample"]) in selected,
            return_dtype=pl.Boolean,
        )
    )
    assert chosen.height == len(selected)
    kept = _first_per_pair(chosen)
    assert keys == sorted(kept) and len(kept) < len(selected)
    assert json.loads((out / "export.json").read_text())["completions"] == {
        "source": "responses",
        "rows": {"responses": len(kept), "solutions": 0},
        "without_solution": None,
        "duplicates": len(selected) - len(kept),
    }


def _reply(text: str) -> str:
    """The assistant message an export makes of a response's text."""
    head = text.lstrip()
    if head.startswith("<think>"):
        return head
    return "<think>\n" + text if "</think>" in text and "<think>" not in text else text


def _first_per_pair(responses: pl.DataFrame) -> list[tuple[str, str, int]]:
    """The keys of ``responses`` that an export keeps: the first (by problem, model, sample)
    of each (prompt, completion) pair."""
    seen, kept = set(), []
    for r in responses.sort("problem_id", "model", "sample").iter_rows(named=True):
        pair = (r["prompt"], _reply(r["text"]))
        if pair not in seen:
            seen.add(pair)
            kept.append((r["problem_id"], r["model"], r["sample"]))
    return kept


def test_trl_prompt_completion(selected_run: curate.Run, tmp: Path) -> None:
    out = tmp / "trl"
    export_run(selected_run, out, format="trl", system_prompt="Think first.")
    problems = selected_run.table("problems").collect()
    train = _load(out)["train"]
    assert train.features == _features("trl", problems.columns)
    sft = export_run(selected_run, tmp / "trl-vs-sft", format="sft")
    assert train.num_rows == sft.rows["train"]
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / "trl.schema.json").read_text())
    )
    for row in train:
        validator.validate(row)
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["prompt"][0]["content"] == "Think first."
        assert [m["role"] for m in row["completion"]] == ["assistant"]
        assert row["completion"][0]["content"].startswith("<think>")


def test_sft_without_selection_takes_correct_responses_of_the_run(
    graded_run: curate.Run, tmp: Path
) -> None:
    responses = read_responses(graded_run.path / "responses")
    assert responses["gen_key"].n_unique() == 2  # the cache holds both settings' responses
    current = _distill_gen_key()
    samples = graded_run.table("problems").select(pl.col("samples").explode()).collect()
    assert set(samples["samples"].struct.field("gen_key")) == {current}  # joined exactly on it
    out = tmp / "sft-graded"
    result = export_run(graded_run, out, format="sft")
    mine = responses.filter(pl.col("gen_key") == current)
    good = mine.filter(pl.col("correct"), pl.col("finish_reason") == "stop")
    kept = _first_per_pair(good)
    assert result.rows["train"] == len(kept) > 0
    assert result.duplicates == good.height - len(kept) > 0
    texts = {(r["problem_id"], r["sample"]): r["text"] for r in good.iter_rows(named=True)}
    for row in _load(out)["train"]:
        assert row["messages"][-1]["content"].endswith(texts[(row["problem_id"], row["sample"])])


def _distill_gen_key() -> str:
    return curate.Distill(Scripted("weak", 0.4), n=4).gen_key(Scripted("weak", 0.4))


def test_run_without_responses_exports_rl_only(plain_run: curate.Run, tmp: Path) -> None:
    """No responses and no reference solutions: no SFT rows (see test_export_solutions)."""
    for fmt in ("sft", "trl"):
        with pytest.raises(
            RunError, match=r"neither responses .* nor reference solutions.*run Distill first"
        ):
            export_run(plain_run, tmp / f"none-{fmt}", format=fmt)  # type: ignore[arg-type]
        with pytest.raises(RunError, match=r"no responses .*--completions solutions"):
            export_run(plain_run, tmp / f"none-{fmt}", format=fmt, completions="responses")  # type: ignore[arg-type]
        assert not (tmp / f"none-{fmt}" / "data").exists()
    assert export_run(plain_run, tmp / "none-rl", format="rl").rows["train"] > 0


# --- determinism, splits, shards -----------------------------------------------------------


def test_split_is_deterministic_and_close_to_the_fraction() -> None:
    ids = [f"src:{i}:{i * 7919 % 10007:08x}" for i in range(1000)]
    draws = [split_draw(0, i) for i in ids]
    assert draws == [split_draw(0, i) for i in ids]
    share = sum(d < 0.2 for d in draws) / len(ids)
    assert abs(share - 0.2) < 0.04  # binomial sd 0.0126: three of them
    other = [split_draw(1, i) < 0.2 for i in ids]
    assert other != [d < 0.2 for d in draws]  # the seed matters


def test_export_split_fraction_and_stability(big_run: curate.Run, tmp: Path) -> None:
    a = export_run(big_run, tmp / "split-a", format="rl", test_fraction=0.1, seed=3)
    assert abs(a.rows["test"] / 1000 - 0.1) < 0.03
    b = export_run(big_run, tmp / "split-b", format="rl", test_fraction=0.1, seed=3)
    assert _shards(tmp / "split-a") == _shards(tmp / "split-b")
    tests = pl.read_parquet(a.files["test"])["id"].to_list()
    assert tests == sorted(tests)
    assert set(tests) == {i for i in pl.read_parquet(b.files["test"])["id"]}
    assert all(split_draw(3, i) < 0.1 for i in tests)
    c = export_run(big_run, tmp / "split-c", format="rl", test_fraction=0.1, seed=4)
    assert set(pl.read_parquet(c.files["test"])["id"]) != set(tests)


def test_reexport_is_byte_identical(selected_run: curate.Run, tmp: Path) -> None:
    for fmt in FORMATS:
        out = tmp / f"same-{fmt}"
        export_run(selected_run, out, format=fmt, test_fraction=0.25)
        first, manifest = _shards(out), (out / "export.json").read_bytes()
        export_run(selected_run, out, format=fmt, test_fraction=0.25)  # into itself
        assert _shards(out) == first
        assert (out / "export.json").read_bytes() == manifest
        export_run(selected_run, tmp / f"same-{fmt}-2", format=fmt, test_fraction=0.25)
        assert _shards(tmp / f"same-{fmt}-2") == first


def test_shards_by_rows_and_by_bytes(big_run: curate.Run, tmp: Path) -> None:
    out = tmp / "shards"
    result = export_run(big_run, out, format="verl", shard_rows=300, row_group_rows=100)
    names = [p.name for p in result.files["train"]]
    assert names == [f"train-{i:05d}-of-00004.parquet" for i in range(4)]
    sizes = [pq.read_metadata(p).num_rows for p in result.files["train"]]
    assert sizes == [300, 300, 300, 100]
    assert [pq.read_metadata(p).num_row_groups for p in result.files["train"]] == [3, 3, 3, 1]
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["splits"]["train"]["files"] == [f"data/{n}" for n in names]
    assert manifest["splits"]["train"]["rows"] == 1000
    assert [s["name"] for s in manifest["run"]["stages"]] == ["ingest"]
    ds = _load(out)["train"]
    assert ds.num_rows == 1000 and ds[999]["extra_info"]["index"] == 999
    # by bytes: the estimate keeps every file under the bound
    small = export_run(big_run, out, format="verl", shard_bytes=64 * 1024)
    assert len(small.files["train"]) > 1
    assert all(p.stat().st_size <= 64 * 1024 for p in small.files["train"])
    # the re-export with fewer shards left none of the earlier ones behind
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        p.name for p in small.files["train"]
    ]
    one = export_run(big_run, out, format="verl")
    assert [p.name for p in (out / "data").iterdir()] == ["train-00000-of-00001.parquet"]
    assert one.rows == {"train": 1000}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_refuses_a_folder_that_is_not_an_export(plain_run: curate.Run, tmp: Path) -> None:
    out = tmp / "occupied"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"not empty \(notes.txt\).*new or empty folder"):
        export_run(plain_run, out, format="rl")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with pytest.raises(ConfigError, match="not empty"):
        export_run(plain_run, plain_run.path, format="rl")  # the run itself
    with pytest.raises(ConfigError, match=r"test_fraction=1\.5"):
        export_run(plain_run, tmp / "bad", format="rl", test_fraction=1.5)
    with pytest.raises(ConfigError, match="expected one of"):
        export_run(plain_run, tmp / "bad", format="csv")  # type: ignore[arg-type]


# --- edge cases ----------------------------------------------------------------------------


def test_empty_run(tmp: Path) -> None:
    pool = _jsonl(tmp / "blank.jsonl", [{"problem": "   ", "answer": "1"}])
    run = curate.Recipe("empty", [curate.read(pool)], [curate.ExactDedup()]).run(tmp / "empty")
    assert run.table("problems").collect().height == 0
    columns = run.table("problems").collect().columns
    out = tmp / "empty-out"
    result = export_run(run, out, format="verl", test_fraction=0.2)
    assert result.rows == {"train": 0, "test": 0}
    for split in ("train", "test"):
        (path,) = result.files[split]
        assert path.name == f"{split}-00000-of-00001.parquet"
        assert pq.read_metadata(path).num_rows == 0
        assert pq.read_schema(path) == arrow_schema(fields_for("verl", columns))
    stream = _load(out, streaming=True)
    assert set(stream) == {"train", "test"}
    assert stream["train"].features == _features("verl", columns)
    assert list(stream["train"]) == [] and list(stream["test"]) == []
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["rows"] == 0 and manifest["splits"]["test"]["files"]
    with pytest.raises(RunError, match="run Distill first"):
        export_run(run, tmp / "empty-sft", format="sft", completions="responses")
    # auto: no responses, so the solutions of no problems: an empty export, not an error
    assert export_run(run, tmp / "empty-sft", format="sft").rows == {"train": 0}


def test_a_split_with_no_rows_gets_no_file(plain_run: curate.Run, tmp: Path) -> None:
    out = tmp / "tiny-test"
    result = export_run(plain_run, out, format="rl", test_fraction=1e-9)
    assert result.rows["test"] == 0 and result.files["test"] == []
    assert set(_load(out)) == {"train"}  # the empty split would make load_dataset fail


def test_hostile_characters_are_preserved(plain_run: curate.Run, tmp: Path) -> None:
    out = tmp / "hostile"
    export_run(plain_run, out, format="verl")
    problems = plain_run.table("problems").collect()
    rows = list(_load(out)["train"])
    assert sorted(r["reward_model"]["ground_truth"] for r in rows) == sorted(problems["answer"])
    assert set(HOSTILE) <= {r["reward_model"]["ground_truth"] for r in rows}
    for row in rows:
        problem = problems.filter(pl.col("id") == row["extra_info"]["id"]).row(0, named=True)
        assert row["prompt"][0]["content"].startswith(problem["problem"] + " Let's think")
    # the braces of an answer are never taken for a template placeholder
    braces = next(r for r in rows if r["reward_model"]["ground_truth"] == "{}{{x}}{problem}")
    assert "Problem 5: {}{{x}}{problem} Let's think" in braces["prompt"][0]["content"]


def test_validation_names_the_row_and_field(tmp: Path) -> None:
    pool = _jsonl(
        tmp / "nogold.jsonl",
        [{"problem": "What is 1 + 1?", "answer": "2"}, {"problem": "Prove it.", "answer": None}],
    )
    run = curate.Recipe("nogold", [curate.read(pool)], []).run(tmp / "nogold")
    bad = run.table("problems").collect().filter(pl.col("answer").is_null())["id"][0]
    for fmt, field in (("verl", "reward_model.ground_truth"), ("rl", "answer")):
        out = tmp / f"nogold-{fmt}"
        with pytest.raises(InputError, match=re.escape(f"row {bad!r}: {field} is null")) as e:
            export_run(run, out, format=fmt)  # type: ignore[arg-type]
        assert e.value.field == field and "RequireGradable" in str(e.value)
        assert not out.exists()  # nothing written


def test_validate_checks_messages() -> None:
    from curate.export import validate

    frame = pl.DataFrame(
        {
            "id": ["a", "b"],
            "prompt": [
                [{"role": "user", "content": "hi"}],
                [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
            ],
            "answer": ["1", "2"],
            "problem": ["p", "q"],
            "source": ["s", "s"],
            "level": [None, None],
            "subject": [None, None],
        },
        schema_overrides={"level": pl.String, "subject": pl.String},
    )
    with pytest.raises(InputError, match=r"row 'b': prompt has a message whose role is not one"):
        validate(frame, "rl")
    blank = frame.with_columns(pl.lit([{"role": "user", "content": " "}]).alias("prompt"))
    with pytest.raises(InputError, match=r"row 'a': prompt has a message with blank content"):
        validate(blank, "rl")
    schema = json.loads((SCHEMAS / "rl.schema.json").read_text())
    row = frame.row(1, named=True)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(row, schema)
    jsonschema.validate(frame.row(0, named=True), schema)


def _tokenizer() -> Any:
    """A byte-level BPE tokenizer with no merges and a ChatML chat template: encodes any
    text, built here, downloads nothing."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        chat_template=CHATML,
        clean_up_tokenization_spaces=False,
    )


# --- streaming: chunks, spilling, a bad row late --------------------------------------------


def test_rechunk_cuts_depend_on_the_rows_not_the_batches() -> None:
    import random

    from curate.export import writer

    rng = random.Random(0)
    sizes = [rng.randrange(0, writer.CHUNK_BYTES // 3) for _ in range(300)]

    def cut(batches: list[int]) -> list[list[int]]:
        frames, at = [], 0
        for b in batches:
            frames.append(pl.DataFrame({"s": sizes[at : at + b]}, schema={"s": pl.Int64}))
            at += b
        return [f["s"].to_list() for f in writer.rechunk(frames, pl.col("s"))]

    whole = cut([300])
    assert cut([1] * 300) == cut([7, 0, 150, 143]) == whole
    assert [s for c in whole for s in c] == sizes
    assert all(sum(c) >= writer.CHUNK_BYTES > sum(c[:-1]) for c in whole[:-1])


@pytest.mark.parametrize("fmt", ["sft", "verl"])
def test_small_chunks_and_small_ranges_give_the_same_rows(
    fmt: str, selected_run: curate.Run, big_run: curate.Run, tmp: Path, monkeypatch: Any
) -> None:
    """Rows go through shaping, validation and the writer a chunk at a time, and responses
    are sorted a range at a time: tiny chunks and ranges change neither the rows nor their
    order."""
    from curate.export import ranges, writer

    run = selected_run if fmt == "sft" else big_run
    whole = export_run(run, tmp / f"whole-{fmt}", format=fmt, test_fraction=0.25, shard_rows=7)  # type: ignore[arg-type]
    monkeypatch.setattr(writer, "CHUNK_BYTES", 300)
    monkeypatch.setattr(ranges, "RANGE_BYTES", 500)  # many ranges
    small = export_run(run, tmp / f"small-{fmt}", format=fmt, test_fraction=0.25, shard_rows=7)  # type: ignore[arg-type]
    assert small.rows == whole.rows and whole.rows["train"] > 7
    for split in whole.files:
        assert [p.name for p in small.files[split]] == [p.name for p in whole.files[split]]
        for a, b in zip(small.files[split], whole.files[split], strict=True):
            assert pq.read_table(a).equals(pq.read_table(b))
            assert pq.read_metadata(a).num_row_groups >= 1


def test_a_bad_row_in_a_later_chunk_leaves_the_previous_export(tmp: Path, monkeypatch: Any) -> None:
    from curate.export import writer

    rows = [{"problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(200)]
    good = curate.Recipe("late", [curate.read(_jsonl(tmp / "late.jsonl", rows))], [])
    run = good.run(tmp / "late")
    out = tmp / "late-out"
    export_run(run, out, format="verl")
    before = _shards(out), (out / "export.json").read_bytes()
    rows[-1]["answer"] = None
    bad = curate.Recipe("late", [curate.read(_jsonl(tmp / "late2.jsonl", rows))], [])
    run = bad.run(tmp / "late2")
    ids = run.table("problems").collect().sort("id")
    assert ids["answer"].is_null().arg_true()[0] > 10  # rows are exported by id
    monkeypatch.setattr(writer, "CHUNK_BYTES", 200)  # a few rows per chunk: good ones first
    with pytest.raises(InputError, match=r"reward_model\.ground_truth is null"):
        export_run(run, out, format="verl")
    assert (_shards(out), (out / "export.json").read_bytes()) == before
    assert sorted(p.name for p in out.iterdir()) == ["data", "export.json"]


def test_shard_rows_decide_alone_and_a_failed_export_leaves_no_new_folders(
    big_run: curate.Run, tmp: Path
) -> None:
    result = export_run(big_run, tmp / "rows", format="verl", shard_rows=100, shard_bytes=5000)
    assert [pq.read_metadata(p).num_rows for p in result.files["train"]] == [100] * 10
    with pytest.raises(RunError, match="run Distill first"):
        export_run(big_run, tmp / "new" / "deeper" / "out", format="sft")
    assert not (tmp / "new").exists()


def test_a_retried_failed_generation_is_exported_not_its_failure(
    selected_run: curate.Run, tmp: Path
) -> None:
    """The responses cache may hold a key twice: a failed generation and, from a later run,
    its retry. The export takes the copy that did not fail (as `read_responses` does), even
    when the failure was stored first."""
    import shutil

    copy = Path(shutil.copytree(selected_run.path, tmp / "retried"))
    parts = sorted((copy / "responses").glob("*.parquet"))
    first = pl.read_parquet(parts[0])
    failed = first.with_columns(
        text=pl.lit(""), finish_reason=pl.lit("error"), error=pl.lit("server said 500")
    )
    failed.write_parquet(copy / "responses" / "000-failed-first.parquet")  # sorts first
    want = export_run(selected_run, tmp / "retried-want", format="sft")
    got = export_run(curate.Run(copy), tmp / "retried-got", format="sft")
    assert got.rows == want.rows
    assert pl.read_parquet(got.files["train"]).equals(pl.read_parquet(want.files["train"]))


def test_a_reply_with_its_own_think_block_inside_is_left_as_it_is(tmp: Path) -> None:
    """Only a reply that closes a <think> the prompt opened gets the opening tag: one that
    holds a whole <think>...</think> later on (a problem and its worked solution) does not."""
    solutions = ["New problem: 1+1?\nSolution: <think>1+1=2</think> \\boxed{2}",
                 "1 plus 1</think> \\boxed{2}"]  # fmt: skip
    rows = [{"problem": f"p{i}", "answer": "2", "solution": s} for i, s in enumerate(solutions)]
    path = tmp / "think.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = curate.Recipe("think", [curate.read(path)]).run(tmp / "think-run")
    out = curate.export_run(run, tmp / "think-sft", format="sft", completions="solutions")
    shard = pl.read_parquet(out.files["train"][0])
    contents = [m[-1]["content"] for m in shard["messages"].to_list()]
    assert contents == [solutions[0], "<think>\n" + solutions[1]]


# --- order ---------------------------------------------------------------------------------


def _ids(result: Any, split: str = "train") -> list[str]:
    return [i for p in result.files[split] for i in pl.read_parquet(p)["id"].to_list()]


def test_shuffled_order_is_seeded_and_keeps_the_rows(big_run: curate.Run, tmp: Path) -> None:
    by_id = export_run(big_run, tmp / "order-id", format="verl")
    a = export_run(big_run, tmp / "order-a", format="verl", order="shuffle", shard_rows=300)
    export_run(big_run, tmp / "order-b", format="verl", order="shuffle", shard_rows=300)
    assert _shards(tmp / "order-a") == _shards(tmp / "order-b")
    ids = [i["index"] for p in a.files["train"] for i in pl.read_parquet(p)["extra_info"]]
    assert ids == list(range(1000))  # verl's index follows the new order
    shuffled = [
        x
        for p in a.files["train"]
        for x in pl.read_parquet(p)["reward_model"].struct.field("ground_truth").to_list()
    ]
    in_order = [
        x
        for p in by_id.files["train"]
        for x in pl.read_parquet(p)["reward_model"].struct.field("ground_truth").to_list()
    ]
    assert sorted(shuffled) == sorted(in_order) and shuffled != in_order
    c = export_run(big_run, tmp / "order-c", format="verl", order="shuffle", seed=1)
    other = [
        x
        for p in c.files["train"]
        for x in pl.read_parquet(p)["reward_model"].struct.field("ground_truth").to_list()
    ]
    assert other != shuffled
    manifest = json.loads(a.manifest.read_text())
    assert manifest["options"]["order"] == "shuffle"
    assert "order" not in json.loads(by_id.manifest.read_text())["options"]


def test_shuffle_spreads_the_sources_and_keeps_the_split(tmp: Path) -> None:
    pools = [
        curate.read(
            _jsonl(
                tmp / f"{s}.jsonl", [{"problem": f"{s} {i}?", "answer": str(i)} for i in range(40)]
            ),
            source=s,
        )
        for s in ("alpha", "beta")
    ]
    run = curate.Recipe("two", pools).run(tmp / "two")
    by_id = export_run(run, tmp / "two-id", format="rl", test_fraction=0.25, seed=2)
    mixed = export_run(
        run, tmp / "two-mixed", format="rl", test_fraction=0.25, seed=2, order="shuffle"
    )
    for split in ("train", "test"):
        assert sorted(_ids(mixed, split)) == _ids(by_id, split)  # the same split
    first_half = _ids(mixed)[: len(_ids(mixed)) // 2]
    assert {i.split(":")[0] for i in first_half} == {"alpha", "beta"}
    assert {i.split(":")[0] for i in _ids(by_id)[: len(_ids(by_id)) // 2]} == {"alpha"}


def test_default_order_is_the_id_order(plain_run: curate.Run, tmp: Path) -> None:
    export_run(plain_run, tmp / "default-order", format="rl")
    export_run(plain_run, tmp / "explicit-order", format="rl", order="id")
    assert _shards(tmp / "default-order") == _shards(tmp / "explicit-order")
    with pytest.raises(ConfigError, match="order='random'"):
        export_run(plain_run, tmp / "bad-order", format="rl", order="random")  # type: ignore[arg-type]


def _pairs(result: Any, split: str) -> list[str]:
    return [
        json.dumps(m) for p in result.files[split] for m in pl.read_parquet(p)["messages"].to_list()
    ]


def test_shuffled_sft_rows(selected_run: curate.Run, tmp: Path) -> None:
    by_id = export_run(selected_run, tmp / "sft-id", format="sft", test_fraction=0.25)
    a = export_run(selected_run, tmp / "sft-a", format="sft", test_fraction=0.25, order="shuffle")
    export_run(selected_run, tmp / "sft-b", format="sft", test_fraction=0.25, order="shuffle")
    assert _shards(tmp / "sft-a") == _shards(tmp / "sft-b")
    for split in ("train", "test"):  # the same pairs (of two equal pairs, the first is kept)
        assert sorted(_pairs(a, split)) == sorted(_pairs(by_id, split))
    assert _ids(a) != _ids(by_id) and a.rows == by_id.rows
    rows = [
        {"problem": f"{i} + 1?", "answer": str(i + 1), "solution": f"{i + 1}"} for i in range(20)
    ]
    solved = curate.Recipe("solved", [curate.read(_jsonl(tmp / "solved.jsonl", rows))])
    run = solved.run(tmp / "solved")
    solutions = export_run(run, tmp / "sft-solutions", format="sft", order="shuffle")
    ids = _ids(solutions)
    assert all(i.endswith("/reference/0") for i in ids) and ids != sorted(ids)
    assert sorted(ids) == _ids(export_run(run, tmp / "sft-solutions-id", format="sft"))


# --- bounded memory: buckets and digests -----------------------------------------------------


@pytest.mark.parametrize("name", ["selected_run", "graded_run"])
@pytest.mark.parametrize("order", ["id", "shuffle"])
def test_the_responses_found_in_buckets_give_the_same_shards(
    name: str, order: str, request: pytest.FixtureRequest, tmp: Path, monkeypatch: Any
) -> None:
    """`_wanted_responses` finds the responses in buckets of a hash of the problem id (one
    per `EXPORT_BUCKET` stored responses): any number of buckets gives the same bytes."""
    from curate.export import shards, wanted

    run: curate.Run = request.getfixturevalue(name)
    options: dict[str, Any] = {"format": "sft", "test_fraction": 0.3, "order": order}
    one = export_run(run, tmp / f"buckets-{name}-{order}-1", **options)
    monkeypatch.setattr(wanted, "EXPORT_BUCKET", 7)  # 96 or more responses: 14+ buckets
    many = export_run(run, tmp / f"buckets-{name}-{order}-n", **options)
    assert sum(one.rows.values()) > 0 and one.rows == many.rows
    assert one.duplicates == many.duplicates
    assert _shards(one.out) == _shards(many.out)
    parts = curate.responses.ResponsesTable.of_run(run.path).parts()
    export_options = shards.ExportOptions(**options)
    problems = run.table("problems")
    wanted = [
        wanted._wanted_responses(run, parts, problems, export_options, buckets=b) for b in (1, 3)
    ]
    assert wanted[0].sort("_part", "_row").equals(wanted[1].sort("_part", "_row"))


def test_the_bucket_files_are_the_exports_own_and_none_is_left(
    graded_run: curate.Run, tmp: Path, monkeypatch: Any
) -> None:
    """In buckets, the responses' key columns and the problems are read once and routed to
    bucket files (`curate.responses.routed`) in the export's temporary folder (not the
    run's), a bucket in several files when few may be open: the same bytes, and no file is
    left behind, also when a bucket fails."""
    from curate import responses
    from curate.export import wanted

    run, options = graded_run, {"format": "sft", "test_fraction": 0.3}
    one = export_run(run, tmp / "routed-1", **options)
    monkeypatch.setattr(wanted, "EXPORT_BUCKET", 7)
    monkeypatch.setattr(responses, "OPEN_BUCKETS", 2)
    monkeypatch.setattr(responses, "ROUTE_BYTES", 1)  # every part written out at once
    folders: list[Path] = []
    routed = responses.Buckets.read

    def read(self: responses.Buckets, bucket: int) -> pl.DataFrame:
        folders.append(self.folder)
        if bucket == 0 and self.key == "problem_id":  # the responses: a part at a time
            assert len(list(self.folder.iterdir())) > self.count
        return routed(self, bucket)

    monkeypatch.setattr(responses.Buckets, "read", read)
    many = export_run(run, tmp / "routed-n", **options)
    assert _shards(one.out) == _shards(many.out)
    assert folders and all(f.parent.parent == many.out for f in folders)
    assert sorted(p.name for p in many.out.iterdir()) == ["data", "export.json"]

    def failing(keys: pl.DataFrame, mine: pl.DataFrame) -> Any:
        raise RuntimeError("a bucket failed")

    monkeypatch.setattr(wanted, "_wanted_in", failing)
    with pytest.raises(RuntimeError, match="a bucket failed"):
        export_run(run, tmp / "routed-failed", **options)
    assert not (tmp / "routed-failed").exists()
    assert not list(run.path.rglob(f"{responses.BUCKETS_PREFIX}*"))


@pytest.mark.parametrize("order", ["id", "shuffle"])
def test_completions_sorted_in_small_ranges_give_the_same_shards(
    order: str, tmp: Path, monkeypatch: Any
) -> None:
    """`_Ranges` sorts the completions one range of the export order at a time (spilled to
    disk first): a range per row gives the same bytes as one range, responses and solutions
    mixed (``completions="both"``), in the order the module doc gives; `build_splits` (in
    a folder of its own) gives the same rows."""
    from curate import responses
    from curate.export import ranges, shards

    rows = [{**r, "solution": f"It is {r['answer']}."} for r in _sums()]
    pool = _jsonl(tmp / f"both-{order}.jsonl", rows)
    source = curate.read(pool, solution="solution")
    stages = [_distill(), curate.Grade()]
    run = curate.Recipe("both", [source], stages).run(tmp / f"both-{order}", workers=1)
    options: dict[str, Any] = {"format": "trl", "test_fraction": 0.3, "order": order}
    options |= {"completions": "both"}
    one = export_run(run, tmp / f"ranges-{order}-1", **options)
    monkeypatch.setattr(ranges, "RANGE_BYTES", 1)  # every completion a range of its own
    many = export_run(run, tmp / f"ranges-{order}-n", **options)
    assert one.rows == many.rows and one.rows["train"] > 10 and one.rows["test"] > 0
    assert _shards(one.out) == _shards(many.out)
    # a few rows per range, from both models' parts; one file open at a time: a range
    # is written in several files
    monkeypatch.setattr(ranges, "RANGE_BYTES", 2000)
    monkeypatch.setattr(responses, "OPEN_BUCKETS", 1)
    monkeypatch.setattr(responses, "ROUTE_BYTES", 1)  # each part's rows written at once
    few = export_run(run, tmp / f"ranges-{order}-f", **options)
    assert _shards(one.out) == _shards(few.out)
    for split, table in build_splits(run, shards.ExportOptions(**options)).items():
        read = pa.concat_tables([pq.read_table(p) for p in one.files[split]])
        assert table.equals(read)
        keys = table.select(["problem_id", "model", "sample"]).to_pylist()
        keys = [(k["problem_id"], k["model"], k["sample"]) for k in keys]
        assert "reference" in {m for _, m, _ in keys} and len(set(keys)) == len(keys)
        if order == "id":
            assert keys == sorted(keys)
        else:
            draws = [ranges.order_draw(0, i) for i in table["id"].to_pylist()]
            assert draws == sorted(draws)


def test_first_seen_keeps_the_first_of_each_digest_across_chunks() -> None:
    import hashlib

    import numpy as np

    from curate.export.shards import _DIGEST, _first_seen

    texts = [f"pair {i % 37}" for i in range(300)]
    digests = [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
    digests[5] = digests[6] = bytes(16)  # trailing zero bytes are digest bytes too
    seen_set: set[bytes] = set()
    expected = []
    for d in digests:
        expected.append(d not in seen_set)
        seen_set.add(d)
    seen, got = np.empty(0, dtype=_DIGEST), []
    for start in range(0, len(digests), 64):
        first, seen = _first_seen(np.array(digests[start : start + 64], dtype=_DIGEST), seen)
        got += first.tolist()
    assert got == expected and seen.size == len(seen_set)
    assert (seen[:-1] < seen[1:]).all()
