"""Tests of curate.io: readers of every format, column mapping, canonicalization, writers."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate import io
from curate.errors import ConfigError, InputError
from curate.io import Source, canon, formats, read, strip_instructions, write_json, write_parquet  # noqa: F401  (submodules used via io.)
from curate.schema import PROBLEM_COLUMNS
from curate.text import text_hash
from curate.verification import SOLUTION_RULES, extract_answer

SHARED = Path(__file__).parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present")

BOXED = "\\boxed{}"
LETS_THINK = f"Let's think step by step and output the final answer within {BOXED}."
QWEN = f"Please reason step by step, and put your final answer within {BOXED}."


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def meta(df: pl.DataFrame, i: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(df["meta"][i])
    return out


def hf_dataset(records: list[dict[str, Any]]) -> Any:
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    return datasets.Dataset.from_list(records)


# ----------------------------------------------------------------------------- formats

MATH_ROWS = [
    {
        "problem": "What is $1+1$?",
        "level": "Level 1",
        "type": "Algebra",
        "solution": "It is $\\boxed{2}$.",
        "unique_id": "a/1",
    },
    {
        "problem": "What is $2+3$?",
        "level": "Level 2",
        "type": "Algebra",
        "solution": "We get $\\boxed{5}$.",
        "unique_id": "a/2",
    },
]


def check_math(df: pl.DataFrame, name: str) -> None:
    assert df.columns == list(PROBLEM_COLUMNS)
    assert all(dtype == pl.String for c, dtype in df.schema.items() if c != "level")
    assert df.schema["level"] == pl.Float64
    assert df["problem"].to_list() == ["What is $1+1$?", "What is $2+3$?"]
    assert df["answer"].to_list() == ["2", "5"]
    assert df["level"].to_list() == [1.0, 2.0]
    assert df["subject"].to_list() == ["Algebra", "Algebra"]
    assert df["source"].to_list() == [name, name]
    assert meta(df, 1) == {"unique_id": "a/2"}


def test_jsonl(tmp_path: Path) -> None:
    df = read(write_jsonl(tmp_path / "math.jsonl", MATH_ROWS)).frame()
    check_math(df, "math")


def test_ndjson_suffix_and_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "m.ndjson"
    p.write_bytes(b"\n" + orjson.dumps(MATH_ROWS[0]) + b"\n  \n" + orjson.dumps(MATH_ROWS[1]))
    src = read(p, source="math")
    assert src.format == "jsonl"
    check_math(src.frame(), "math")
    assert src.frame()["id"][1].startswith("math:1:")  # rows count records, not lines


@pytest.mark.parametrize("layout", ["array", "data", "columns", "lines"])
def test_json_layouts(tmp_path: Path, layout: str) -> None:
    p = tmp_path / "math.json"
    if layout == "array":
        p.write_bytes(orjson.dumps(MATH_ROWS, option=orjson.OPT_INDENT_2))
    elif layout == "data":
        p.write_bytes(orjson.dumps({"version": 1, "data": MATH_ROWS}))
    elif layout == "columns":
        p.write_bytes(orjson.dumps({k: [r[k] for r in MATH_ROWS] for k in MATH_ROWS[0]}))
    else:  # JSON Lines saved with a .json suffix
        write_jsonl(p, MATH_ROWS)
    check_math(read(p).frame(), "math")


def test_json_columns_with_a_data_column(tmp_path: Path) -> None:
    p = tmp_path / "cols.json"
    p.write_bytes(orjson.dumps({"problem": ["a", "b"], "data": ["x", "y"]}))
    df = read(p).frame()
    assert df["problem"].to_list() == ["a", "b"] and meta(df, 1) == {"data": "y"}


def test_json_errors_name_row(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_bytes(orjson.dumps([{"problem": "a"}, [1, 2]]))
    with pytest.raises(InputError) as e:
        read(p).frame()
    assert e.value.row == 1 and "got list" in str(e.value)
    p.write_bytes(orjson.dumps([{"problem": "a"}, {"problem": 7}]))
    with pytest.raises(InputError) as e:
        read(p).frame()
    assert (e.value.row, e.value.field) == (1, "problem")
    p.write_bytes(b'[{"problem": "a"},\n {"problem": ]')
    with pytest.raises(InputError, match="not valid JSON") as e:
        read(p).frame()
    assert e.value.line == 2
    p.write_bytes(b'{"a": [1, 2], "b": [1]}')
    with pytest.raises(InputError, match="one length"):
        read(p).frame()


def test_parquet(tmp_path: Path) -> None:
    p = tmp_path / "math.parquet"
    pq.write_table(pa.Table.from_pylist(MATH_ROWS), p)
    check_math(read(p).frame(), "math")


def test_csv_reads_everything_as_text(tmp_path: Path) -> None:
    p = tmp_path / "math.csv"
    pl.DataFrame(MATH_ROWS).write_csv(p)
    check_math(read(p).frame(), "math")
    p.write_text('question,answer,code\n"1+1, in words?\nThink.",2,007\n')
    df = read(p).frame()
    assert df["problem"][0] == "1+1, in words?\nThink." and df["answer"][0] == "2"
    assert meta(df) == {"code": "007"}  # not parsed as a number


def test_hf_dataset_folder(tmp_path: Path) -> None:
    folder = tmp_path / "math ds"
    hf_dataset(MATH_ROWS).save_to_disk(str(folder))
    src = read(folder)
    assert (src.format, src.name) == ("hf", "math_ds")
    check_math(src.frame(), "math_ds")
    with pytest.raises(ConfigError, match="DatasetDict"):
        read(folder, split="test")


def test_hf_dataset_dict_splits(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [{"question": f"q{i}", "answer": str(i)} for i in range(3)]
    dd = datasets.DatasetDict({"train": hf_dataset(rows), "test": hf_dataset(rows[:1])})
    dd.save_to_disk(str(tmp_path / "dd"))
    train = read(tmp_path / "dd")
    assert (train.split, train.name) == ("train", "dd-train")
    assert train.frame()["problem"].to_list() == ["q0", "q1", "q2"]
    test = read(tmp_path / "dd", split="test", source="dd/test")
    assert test.frame()["id"].to_list() == [f"dd/test:0:{text_hash('q0')[:8]}"]
    with pytest.raises(ConfigError, match=r"\['train', 'test'\]"):
        read(tmp_path / "dd", split="validation")
    datasets.DatasetDict({"test": hf_dataset(rows)}).save_to_disk(str(tmp_path / "only"))
    with pytest.raises(ConfigError, match=r"without a 'train' split.*'test'"):
        read(tmp_path / "only")
    assert read(tmp_path / "only", split="test").frame().height == 3


def test_format_detection_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read(tmp_path / "missing.jsonl")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"suffix '\.txt'"):
        read(tmp_path / "a.txt")
    assert read(tmp_path / "a.txt", format="jsonl").format == "jsonl"
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="holds no data files"):
        read(tmp_path / "plain")
    with pytest.raises(ConfigError, match="does not fit"):
        read(tmp_path / "a.txt", format="hf")
    with pytest.raises(ConfigError, match="DatasetDict"):
        read(tmp_path / "a.txt", format="jsonl", split="train")


# ------------------------------------------------------------------------ column mapping


def test_gsm8k_mapping_does_not_also_map_answer(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "gsm8k.jsonl",
        [
            {
                "question": "Ann has 3 apples and buys 4,000. How many?",
                "answer": "3 + 4000 = <<3+4000=4003>>4003\n#### 4,003",
            }
        ],
    )
    df = read(p, problem="question", solution="answer").frame()
    assert df["answer"][0] == "4003"
    assert df["solution"][0].startswith("3 + 4000")
    assert meta(df) == {}


def test_math_boxed_extraction_without_answer_column(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"problem": "p", "solution": "So $x = \\boxed{\\frac{1}{2}}$."},
            {"problem": "q", "solution": "no final answer here"},
            {"problem": "r", "solution": "Thus \\boxed{$7$}", "answer": ""},
            {"problem": "s", "solution": "\\boxed{1}", "answer": None},
        ],
    )
    assert read(p).frame()["answer"].to_list() == ["\\frac{1}{2}", None, "7", "1"]


def test_name_matching_order_and_explicit_mapping(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "x.jsonl",
        [
            {
                "Question": "Q?",
                "query": "first?",
                "final_answer": "1",
                "target": "2",
                "rationale": "r",
                "category": "c",
                "subject": "s",
                "difficulty": 3,
            }
        ],
    )
    df = read(p).frame()
    row = df.row(0, named=True)
    assert (row["problem"], row["answer"], row["solution"]) == ("first?", "1", "r")
    assert (row["subject"], row["level"]) == ("s", 3.0)
    assert meta(df) == {"Question": "Q?", "target": "2", "category": "c"}
    df = read(p, problem="Question", answer="target", subject="category").frame()
    assert df.select("problem", "answer", "subject").row(0) == ("Q?", "2", "c")
    assert list(meta(df)) == ["query", "final_answer", "subject"]


def test_dotted_paths(tmp_path: Path) -> None:
    rec = {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 6*7?"},
        ],
        "rm": {"gt": {"value": 42}, "style": "rule"},
        "tags": [["x"]],
    }
    p = write_jsonl(tmp_path / "n.jsonl", [rec, {**rec, "rm": {"gt": None}}])
    df = read(p, problem="prompt.1.content", answer="rm.gt.value", subject="tags.0.0").frame()
    assert df.select("problem", "answer", "subject").row(0) == ("What is 6*7?", "42", "x")
    assert df["answer"][1] is None  # a missing value at the end of a path is null
    # meta keeps what the paths did not take (not the problem twice, nor an emptied list)
    assert meta(df) == {"prompt": [rec["prompt"][0]], "rm": {"style": "rule"}}
    assert meta(df, 1) == {"prompt": [rec["prompt"][0]], "rm": {"gt": None}}
    neg = read(p, problem="prompt.-1.content").frame()
    assert neg["problem"][0] == "What is 6*7?"


def test_column_whose_name_has_a_dot(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "d.jsonl", [{"q.text": "Q", "answer": 1}])
    assert read(p, problem="q.text").frame()["problem"][0] == "Q"


def test_missing_mapped_column_lists_available(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "rm": {"gt": 1}}])
    with pytest.raises(InputError) as e:
        read(p, answer="solution_text").frame()
    msg = str(e.value)
    assert e.value.field == "answer" and str(p) in msg
    assert "solution_text" in msg and "['question', 'rm']" in msg
    with pytest.raises(InputError, match=r"rm has no key 'ground'; its keys are \['gt'\]"):
        read(p, answer="rm.ground").frame()
    with pytest.raises(InputError, match="question is str"):
        read(p, answer="question.x").frame()


def test_no_problem_column(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "x.jsonl", [{"content": "q", "answer": "1"}])
    with pytest.raises(InputError, match=r"no problem column.*\['content', 'answer'\].*problem="):
        read(p).frame()
    assert read(p, problem="content").frame()["problem"][0] == "q"


def test_bad_mapping_and_name_config(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "x.jsonl", [{"problem": "q"}])
    with pytest.raises(ConfigError, match="dotted path"):
        read(p, answer="a..b")
    with pytest.raises(ConfigError, match="source name"):
        read(p, source="has space")
    with pytest.raises(ConfigError, match="instructions"):
        read(p, instructions="drop")  # type: ignore[arg-type]
    assert read(p, source="org/math-v1.2_x").name == "org/math-v1.2_x"
    weird = write_jsonl(tmp_path / "my data (v2).jsonl", [{"problem": "q"}])
    assert read(weird).name == "my_data__v2_"


# ------------------------------------------------------------------ verl / chat layout

VERL_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
        (
            "extra_info",
            pa.struct([("answer", pa.string()), ("index", pa.int64()), ("split", pa.string())]),
        ),
    ]
)


def verl_rows() -> list[dict[str, Any]]:
    return [
        {
            "data_source": "DAPO-17k",
            "prompt": [{"content": "Find $m+n$.", "role": "user"}],
            "ability": "math",
            "reward_model": {"ground_truth": "34", "style": "rule"},
            "extra_info": {"answer": "", "index": 0, "split": "train"},
        },
        {
            "data_source": "DAPO-17k",
            "prompt": [
                {"content": "You are a helpful assistant.", "role": "system"},
                {"content": f"Compute $2^{{10}}$. {LETS_THINK}", "role": "user"},
            ],
            "ability": "math",
            "reward_model": {"ground_truth": "1024", "style": "rule"},
            "extra_info": {"answer": "", "index": 1, "split": "train"},
        },
    ]


def test_verl_layout(tmp_path: Path) -> None:
    p = tmp_path / "dapo.parquet"
    pq.write_table(pa.Table.from_pylist(verl_rows(), schema=VERL_SCHEMA), p)
    df = read(p).frame()
    assert df["problem"].to_list() == ["Find $m+n$.", "Compute $2^{10}$."]
    assert df["answer"].to_list() == ["34", "1024"]
    m0, m1 = meta(df, 0), meta(df, 1)
    # a lone user message is carried whole by `problem`; everything else stays
    assert list(m0) == ["data_source", "ability", "reward_model", "extra_info"]
    assert m0["reward_model"] == {"style": "rule"}  # the answer is not kept twice
    assert m1["prompt"] == verl_rows()[1]["prompt"]  # the system prompt is kept
    assert m1["original_problem"].endswith(LETS_THINK)


def test_verl_top_level_ground_truth_wins(tmp_path: Path) -> None:
    rows = [{**r, "ground_truth": "7"} for r in verl_rows()]
    p = write_jsonl(tmp_path / "ds.jsonl", rows)
    df = read(p).frame()
    assert df["answer"].to_list() == ["7", "7"]
    assert read(p, answer="reward_model.ground_truth").frame()["answer"][1] == "1024"


def test_chat_list_without_messages_is_an_error(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "c.jsonl", [{"prompt": ["just", "strings"]}])
    with pytest.raises(InputError, match="chat messages") as e:
        read(p).frame()
    assert (e.value.line, e.value.field) == (1, "problem")


# -------------------------------------------------------------------- canonical values


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (72, "72"),
        (142.0, "142"),
        (2.5, "2.5"),
        (-3, "-3"),
        ([5], "5"),
        ([1.0, "$x$"], "1, x"),
        (["a", "b", "c"], "a, b, c"),
        ("  $\\frac{1}{2}$ ", "\\frac{1}{2}"),
        ("$5$;$10$", "$5$;$10$"),
        ("$$x$$", "$$x$$"),
        ("", None),
        (None, None),
        ([], None),
        (float("nan"), None),
        (10**20, "100000000000000000000"),
    ],
)
def test_answer_conversion(tmp_path: Path, raw: Any, expected: str | None) -> None:
    p = tmp_path / "a.parquet"
    if isinstance(raw, float) and math.isnan(raw):
        pq.write_table(pa.table({"problem": ["q"], "answer": [raw]}), p)
    else:
        p = tmp_path / "a.json"
        p.write_text(json.dumps([{"problem": "q", "answer": raw}]))
    assert read(p).frame()["answer"][0] == expected


def test_answer_list_kept_in_meta(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "l.jsonl",
        [{"problem": "q", "answer": ["1", "2"]}, {"problem": "q", "answer": ["3"]}],
    )
    df = read(p).frame()
    assert df["answer"].to_list() == ["1, 2", "3"]
    assert meta(df, 0) == {"answer": ["1", "2"]} and meta(df, 1) == {}


@pytest.mark.parametrize("bad", [True, {"value": 1}, [[1]]])
def test_answer_wrong_type(tmp_path: Path, bad: Any) -> None:
    p = write_jsonl(
        tmp_path / "b.jsonl", [{"problem": "ok", "answer": "1"}, {"problem": "q", "answer": bad}]
    )
    with pytest.raises(InputError, match="expected text or a number, got") as e:
        read(p).frame()
    assert (e.value.line, e.value.field, e.value.path) == (2, "answer", str(p))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Level 3", 3.0),
        ("level 5", 5.0),
        (2.0, 2.0),
        (4, 4.0),
        ("2.0", 2.0),
        ("2.125", 2.125),
        (26.5625, 26.5625),
        ("Level ?", None),
        ("hard", None),
        (None, None),
    ],
)
def test_level_conversion(tmp_path: Path, raw: Any, expected: float | None) -> None:
    p = write_jsonl(tmp_path / "l.jsonl", [{"problem": "q", "level": raw}])
    df = read(p).frame()
    assert df.schema["level"] == pl.Float64
    assert df["level"][0] == expected
    # a level that is not a number is kept, as it was, in meta
    assert ("level" in meta(df, 0)) == (raw is not None and expected is None)


def test_solution_lists_and_types(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {"problem": "a", "solution": ["First: \\boxed{1}", "Second: \\boxed{1}"]},
            {"problem": "b", "solution": ["Only \\boxed{2}"]},
            {"problem": "c", "solution": "   "},
        ],
    )
    df = read(p).frame()
    assert df["solution"].to_list() == ["First: \\boxed{1}", "Only \\boxed{2}", None]
    assert df["answer"].to_list() == ["1", "2", None]
    assert meta(df, 0) == {"solution": ["First: \\boxed{1}", "Second: \\boxed{1}"]}
    assert meta(df, 1) == {}
    write_jsonl(p, [{"problem": "a", "solution": 3}])
    with pytest.raises(InputError, match=r"solution.*expected text, got int"):
        read(p).frame()


def test_problem_normalization_and_empty_rows(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"problem": "  Caf\u0065\u0301 costs\r\n$3$.  "},
            {"problem": None},
            {"problem": "   "},
            {"other": 1},
        ],
    )
    df = read(p).frame()
    assert df["problem"].to_list() == ["Caf\u00e9 costs\n$3$.", "", "", ""]
    assert df.height == 4  # rows are never dropped here
    assert meta(df, 3) == {"other": 1}


@pytest.mark.parametrize(("value", "kind"), [(42, "int"), ({"text": "q"}, "dict"), (1.5, "float")])
def test_problem_wrong_type_names_line_and_field(tmp_path: Path, value: Any, kind: str) -> None:
    p = tmp_path / "w.jsonl"
    p.write_bytes(b'{"problem": "fine"}\n\n' + orjson.dumps({"problem": value}) + b"\n")
    with pytest.raises(InputError, match=f"expected text, got {kind}") as e:
        read(p).frame()
    assert (e.value.line, e.value.field) == (3, "problem")
    assert re.match(rf"{re.escape(str(p))}, line 3, field 'problem'", str(e.value))


def test_wrong_type_in_parquet_names_row(tmp_path: Path) -> None:
    p = tmp_path / "w.parquet"
    pq.write_table(pa.table({"problem": ["a", "b", "c"], "level": [{"x": 1}, None, {"x": 2}]}), p)
    with pytest.raises(InputError) as e:
        read(p).frame()
    assert (e.value.row, e.value.line, e.value.field) == (0, None, "level")


# ------------------------------------------------------------------ instruction stripping


@pytest.mark.parametrize(
    "instruction",
    [
        *io.INSTRUCTION_SUFFIXES,
        f"let’s  think step by step and output the final\nanswer within {BOXED}",
    ],
)
def test_strip_known_suffixes(instruction: str) -> None:
    assert strip_instructions(f"Find $x$.\n{instruction}  ") == "Find $x$."


def test_strip_prefix_and_stacked() -> None:
    dapo = (
        f"{io.INSTRUCTION_PREFIXES[0]}\n\nFind $x$.\n\nRemember to put your answer on its "
        'own line after "Answer:".'
    )
    assert strip_instructions(dapo) == "Find $x$."
    assert strip_instructions(f"Find $y$. {QWEN} {LETS_THINK}") == "Find $y$."


@pytest.mark.parametrize(
    "text",
    [
        "Find $k$. Please provide the value of m + n.",  # DAPO: part of the question
        "请完成下面一道选择题，每个小题四个选项中，只有一项是符合题目要求的。\nA. 1",
        f"{LETS_THINK} Then find $x$.",  # not at the end
        LETS_THINK,  # nothing would be left
        "Put your answer in a box.",
    ],
)
def test_strip_leaves_other_text(text: str) -> None:
    assert strip_instructions(text) == text


def test_instructions_stripped_with_original_in_meta(tmp_path: Path) -> None:
    raw = f"What is $3^2$?\n{QWEN}"
    p = write_jsonl(tmp_path / "q.jsonl", [{"prompt": raw, "answer": 9, "original_problem": "x"}])
    df = read(p).frame()
    assert df["problem"][0] == "What is $3^2$?"
    assert meta(df) == {"original_problem": "x", "_original_problem": raw}
    kept = read(p, instructions="keep").frame()
    assert kept["problem"][0] == raw and meta(kept) == {"original_problem": "x"}
    assert kept["text_hash"][0] != df["text_hash"][0]


# ---------------------------------------------------------------- meta, ids and hashes


def test_meta_converts_values_json_cannot_hold(tmp_path: Path) -> None:
    p = tmp_path / "t.parquet"
    pq.write_table(
        pa.table(
            {
                "problem": ["q"],
                "blob": [b"\x00\xffab"],
                "day": [dt.date(2024, 2, 29)],
                "when": [dt.datetime(2024, 1, 2, 3, 4, 5)],
                "amount": pa.array([decimal.Decimal("1.50")], pa.decimal128(5, 2)),
                "nested": [{"xs": [1, 2], "ok": True}],
                "nothing": pa.array([None], pa.int64()),
            }
        ),
        p,
    )
    m = meta(read(p).frame())
    assert base64.b64decode(m["blob"]) == b"\x00\xffab"
    assert m["day"] == "2024-02-29" and m["when"] == "2024-01-02T03:04:05"
    assert m["amount"] == "1.50" and m["nested"] == {"xs": [1, 2], "ok": True}
    assert m["nothing"] is None
    assert list(m) == ["blob", "day", "when", "amount", "nested", "nothing"]


def test_ids_stable_unique_and_hash_shared_across_sources(tmp_path: Path) -> None:
    rows = [
        {"problem": "Find $x$ if $2x=4$."},
        {"problem": "Find $x$ if $2x=4$."},
        {"problem": "Other."},
    ]
    a = read(write_jsonl(tmp_path / "a.jsonl", rows), source="alpha").frame()
    assert a.equals(read(tmp_path / "a.jsonl", source="alpha").frame())
    assert a["id"].n_unique() == 3
    h = text_hash("Find $x$ if $2x=4$.")
    assert a["id"].to_list()[:2] == [f"alpha:0:{h[:8]}", f"alpha:1:{h[:8]}"]
    b = read(write_jsonl(tmp_path / "b.jsonl", [{"question": "  Find $x$ if $2x=4$. "}])).frame()
    assert b["text_hash"][0] == a["text_hash"][0] == h
    assert b["source"][0] == "b"


def test_many_batches_keep_order_and_locations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(io.formats, "BATCH_SIZE", 3)
    rows = [{"problem": f"p{i}", "k": i} for i in range(10)]
    df = read(write_jsonl(tmp_path / "b.jsonl", rows)).frame()
    assert df["problem"].to_list() == [f"p{i}" for i in range(10)]
    assert [i.split(":")[1] for i in df["id"]] == [str(i) for i in range(10)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    assert read(tmp_path / "b.parquet").frame().drop("id", "source").equals(df.drop("id", "source"))
    assert sum(1 for _ in read(tmp_path / "b.parquet").batches()) == 4
    write_jsonl(tmp_path / "b.jsonl", [*rows, {"problem": ["x"]}])
    with pytest.raises(InputError) as e:
        read(tmp_path / "b.jsonl").frame()
    assert e.value.line == 11


# ------------------------------------------------------------------------ input errors


def test_malformed_jsonl_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"problem": "a"}\n\n{"problem": "b",\n')
    with pytest.raises(InputError, match="not valid JSON") as e:
        read(p).frame()
    assert e.value.line == 3 and str(p) in str(e.value) and "line 3" in str(e.value)
    p.write_bytes(b'{"problem": "a"}\n[1, 2]\n')
    with pytest.raises(InputError, match="expected a JSON object on each line, got list"):
        read(p).frame()


def test_non_utf8_byte_names_line(tmp_path: Path) -> None:
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(b'{"problem": "a"}\n{"problem": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"byte 0xe9 at byte offset 33 .*not valid UTF-8") as e:
        read(p).frame()
    assert e.value.line == 2
    c = tmp_path / "latin1.csv"
    c.write_bytes(b"problem\na\ncaf\xe9\n")
    with pytest.raises(InputError, match="not valid UTF-8") as e:
        read(c).frame()
    assert e.value.line == 3
    j = tmp_path / "latin1.json"
    j.write_bytes(b'[\n{"problem": "caf\xe9"}]')
    with pytest.raises(InputError, match="not valid UTF-8") as e:
        read(j).frame()
    assert e.value.line == 2


def test_bom_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"problem": "a"}\n')
    assert read(p).frame()["problem"][0] == "a"
    j = tmp_path / "bom.json"
    j.write_bytes(b'\xef\xbb\xbf[{"problem": "a"}]')
    assert read(j).frame()["problem"][0] == "a"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.jsonl", b""),
        ("blank.jsonl", b"\n  \n"),
        ("e.json", b""),
        ("arr.json", b"[]"),
        ("e.csv", b""),
        ("header.csv", b"problem,answer\n"),
    ],
)
def test_empty_inputs(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match="has no rows"):
        read(tmp_path / name).frame()


def test_empty_and_broken_parquet(tmp_path: Path) -> None:
    p = tmp_path / "z.parquet"
    pq.write_table(pa.table({"problem": pa.array([], pa.string())}), p)
    with pytest.raises(InputError, match="has no rows"):
        read(p).frame()
    p.write_bytes(b"")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read(p).frame()


# ------------------------------------------------------------------------- the Source


def test_source_is_frozen_with_readable_repr(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "gsm8k.jsonl", [{"question": "q", "answer": "#### 1"}])
    src = read(p, source="gsm", problem="question", solution="answer", instructions="keep")
    assert repr(src) == (
        f"Source('gsm', {str(p)!r}, format='jsonl', problem='question', "
        "solution='answer', instructions='keep')"
    )
    assert src.mapping == {"problem": "question", "solution": "answer"}
    with pytest.raises(AttributeError):
        src.name = "other"  # type: ignore[misc]
    assert src == read(p, source="gsm", problem="question", solution="answer", instructions="keep")
    assert isinstance(Source(str(p), "x", "jsonl").path, Path)  # type: ignore[arg-type]


def test_fingerprint_changes_with_content_and_options(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "f.jsonl", [{"problem": "q", "answer": "1"}])
    base = read(p).fingerprint()
    assert re.fullmatch(r"[0-9a-f]{40}", base)
    assert read(p).fingerprint() == base
    variants = [
        read(p, source="other"),
        read(p, answer="problem"),
        read(p, instructions="keep"),
        read(p, format="json"),
    ]
    assert len({base, *(s.fingerprint() for s in variants)}) == 5
    write_jsonl(p, [{"problem": "q", "answer": "2"}])
    assert read(p).fingerprint() != base


def test_fingerprint_of_hf_folder(tmp_path: Path) -> None:
    hf_dataset([{"problem": "q"}]).save_to_disk(str(tmp_path / "ds"))
    before = read(tmp_path / "ds").fingerprint()
    assert read(tmp_path / "ds").fingerprint() == before
    hf_dataset([{"problem": "r"}]).save_to_disk(str(tmp_path / "ds2"))
    for name in os.listdir(tmp_path / "ds2"):
        if name.endswith(".arrow"):
            (tmp_path / "ds" / name).write_bytes((tmp_path / "ds2" / name).read_bytes())
    assert read(tmp_path / "ds").fingerprint() != before


# ------------------------------------------------------------------------- writers


def test_write_parquet_deterministic_and_atomic(tmp_path: Path) -> None:
    df = pl.DataFrame({"id": [f"s:{i}" for i in range(70_000)], "x": list(range(70_000))})
    a, b = tmp_path / "deep" / "dir" / "a.parquet", tmp_path / "b.parquet"
    write_parquet(df, a)
    write_parquet(df, b)
    assert a.read_bytes() == b.read_bytes()
    assert pl.read_parquet(a).equals(df)
    meta_ = pq.ParquetFile(a).metadata
    assert [meta_.row_group(i).num_rows for i in range(meta_.num_row_groups)] == [65_536, 4_464]
    assert meta_.row_group(0).column(0).compression == "ZSTD"
    assert meta_.row_group(0).column(0).statistics is not None
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert oct(os.stat(b).st_mode & 0o777) != "0o600"


def test_write_parquet_failure_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "t.parquet"
    write_parquet(pl.DataFrame({"a": [1]}), target)
    old = target.read_bytes()

    def broken(self: pl.DataFrame, file: Any, **kwargs: Any) -> None:
        file.write(b"PAR1 half a file")
        assert any(n.startswith(".t.parquet.") and n.endswith(".tmp") for n in os.listdir(tmp_path))
        raise RuntimeError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_parquet(pl.DataFrame({"a": [2]}), target)
    assert target.read_bytes() == old
    assert os.listdir(tmp_path) == ["t.parquet"]


def test_write_json(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "m.json"
    write_json({"z": 1, "a": {"d": dt.date(2024, 1, 1), "b": b"\x01"}}, p)
    assert p.read_text() == (
        '{\n  "z": 1,\n  "a": {\n    "d": "2024-01-01",\n    "b": "AQ=="\n  }\n}\n'
    )
    write_json([1], p)
    assert p.read_text() == "[\n  1\n]\n"
    assert os.listdir(p.parent) == ["m.json"]


# ------------------------------------------------------------------- property test

_CANONICAL_NAMES = {n for names in io.canon._CANDIDATES.values() for n in names} | {"reward_model"}
_json_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_json_text, inner, max_size=3),
    max_leaves=8,
)
_extra_fields = st.dictionaries(
    _json_text.filter(lambda k: k not in _CANONICAL_NAMES), _json_values, max_size=4
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(st.tuples(_json_text, _extra_fields), min_size=1, max_size=12))
def test_property_jsonl_roundtrip(
    tmp_path: Path, records: list[tuple[str, dict[str, Any]]]
) -> None:
    p = write_jsonl(tmp_path / "prop.jsonl", [{"problem": q, **extra} for q, extra in records])
    df = read(p, instructions="keep").frame()
    assert df.height == len(records)
    assert df["id"].n_unique() == len(records)
    for i, (q, extra) in enumerate(records):
        assert meta(df, i) == extra
        assert df["problem"][i] == unicodedata.normalize("NFC", q.replace("\r\n", "\n")).strip()


# ------------------------------------------------------------------- real data


@needs_shared
def test_real_math_train() -> None:
    df = read(SHARED / "hendrycks_math" / "train.jsonl", source="math").frame()
    assert df.height == 7500 and df["id"].n_unique() == 7500
    assert df["solution"].null_count() == 0
    expected = [extract_answer(s, rules=SOLUTION_RULES) for s in df["solution"]]
    assert df["answer"].to_list() == [
        e.strip() or None if e is not None else None for e in expected
    ]
    # 2 solutions box nothing (\boxed{}) and 2 use a brace-less "\boxed 2"
    assert df["answer"].null_count() <= 4
    assert set(df["level"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0, None}
    assert {meta(df, i)["level"] for i in range(df.height) if df["level"][i] is None} <= {"Level ?"}
    assert df["subject"].n_unique() == 7
    assert set(meta(df)) == {"unique_id"}


@needs_shared
def test_real_gsm8k_train() -> None:
    df = read(
        SHARED / "grade_school_math" / "train.jsonl",
        source="gsm8k",
        problem="question",
        solution="answer",
    ).frame()
    assert df.height == 7473
    assert df["answer"].str.contains(r"^-?\d+(\.\d+)?$").all()
    assert (df["meta"] == "{}").all()


@needs_shared
def test_real_dapo_parquet() -> None:
    df = read(SHARED / "svs_dapo" / "dapo_math_17k.parquet", source="dapo").frame()
    assert df.height == 17917 and df["id"].n_unique() == 17917
    gt = pq.read_table(SHARED / "svs_dapo" / "dapo_math_17k.parquet").column("reward_model")
    assert df["answer"].to_list() == [r["ground_truth"] for r in gt.to_pylist()]
    assert df["text_hash"].n_unique() < 17917  # natural duplicates share a hash
    flat = (SHARED / "svs_dapo" / "dapo_math_17k.jsonl").read_bytes().splitlines()
    problems = [orjson.loads(line)["problem"].strip() for line in flat]
    assert df["problem"].to_list() == [strip_instructions(p) for p in problems]
    assert sum(p != q for p, q in zip(df["problem"], problems, strict=True)) == 20  # Chinese


@needs_shared
def test_real_rllm_aime_floats_become_ints() -> None:
    aime = read(SHARED / "rllm" / "test" / "aime.json").frame()
    assert aime.height == 30 and aime["answer"].str.contains(r"^\d+$").all()
    amc = read(SHARED / "rllm" / "test" / "amc.json").frame()
    assert amc["answer"][0] == "142" and amc["level"][0] == 2.0
    assert not amc["answer"].str.ends_with(".0").any()


@needs_shared
def test_real_deepscaler_instructions_stripped() -> None:
    df = read(SHARED / "deepscaler_partial" / "deepscaler_train.parquet").frame()
    assert df.height == 2000
    assert not df["problem"].str.contains("step by step").any()
    originals = [meta(df, i)["original_problem"] for i in range(df.height)]
    assert all("Let's think step by step" in o for o in originals)
    assert df["answer"].null_count() == 0


@needs_shared
def test_real_qwq_and_every_small_shared_file_reads() -> None:
    qwq = read(SHARED / "qwq_eval" / "aime25.jsonl").frame()
    assert qwq["answer"][0] == "70" and "Please reason" not in qwq["problem"][0]
    skip = {"carp_en"}  # its problem column is called "content": needs problem=content
    for f in sorted(SHARED.rglob("*")):
        small = f.is_file() and f.stat().st_size < 400_000  # keeps the test fast
        problems = "web_corpus" not in f.parts  # web pages are documents, not problems
        if (
            small
            and problems
            and f.suffix in {".json", ".jsonl", ".parquet"}
            and f.parent.name not in skip
        ):
            df = read(f).frame()
            assert df.height > 0 and df["id"].n_unique() == df.height, f
