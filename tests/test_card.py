"""The dataset card: YAML front matter the Hub and `datasets` read, an escaped Markdown body,
plots that come out byte-identical, for runs with and without responses, exported or not.

Runs are built with real stages; generation uses a small scripted `Generator` (a stand-in for
an inference engine, copied from test_distill.py) so that grading has something to grade.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from _engines import Scripted

import curate
from curate.errors import ConfigError, RunError
from curate.export.card import code_block, header, md_escape, write_card
from curate.export.shards import export_run

HOSTILE = "a|b # c: \"q\" 's' `tick` <b>x</b> $x$ *y* [l](u) \\ {z}\n---\n# heading\n| x |"
PLOT_FILE = re.compile(r"!\[[^\]]*\]\((plots/[a-z_]+\.png)\)")


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """The parsed YAML header and the body; the header must not hold a document marker."""
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    assert not {"---", "..."} & set(head.splitlines())
    return yaml.safe_load(head), body


def plots_of(body: str) -> list[str]:
    return PLOT_FILE.findall(body)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> curate.Run:
    """Two MIT sources, a duplicate across them, no responses (a DeepScaleR-like run)."""
    d = tmp_path_factory.mktemp("plain")
    a = jsonl(
        d / "a.jsonl", [{"problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(8)]
    )
    b = jsonl(
        d / "b.jsonl",
        [{"problem": "What is 0 + 1?", "answer": "1"}, {"problem": "Say x.", "answer": "x"}],
    )
    sources = [curate.read(a, license="MIT"), curate.read(b, license="mit")]
    return curate.Recipe("plain", sources, [curate.ExactDedup()]).run(d / "run")


@pytest.fixture(scope="module")
def graded_run(tmp_path_factory: pytest.TempPathFactory) -> curate.Run:
    """Distill (two models) -> Grade -> DeepDistill Stage I: responses, grades, a selection."""
    d = tmp_path_factory.mktemp("graded")
    rows = [
        {"problem": f"What is {a} + {b}?", "answer": str(a + b)} for a in range(6) for b in range(5)
    ]
    stages = [
        curate.ExactDedup(),
        curate.Distill((Scripted("weak", 0.3), Scripted("strong", 0.8)), n=4),
        curate.Grade(),
        curate.DeepDistillStageI(),
    ]
    source = curate.read(jsonl(d / "arith.jsonl", rows), license="Apache-2.0")
    return curate.Recipe("graded", [source], stages).run(d / "run")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> curate.Run:
    """Hostile characters wherever a user or the data can put them."""
    d = tmp_path_factory.mktemp("hostile")
    rows = [
        {"problem": f"Compute {i} + 1 ```` and | pipe\n---\n", "answer": HOSTILE} for i in range(3)
    ]
    source = curate.read(jsonl(d / "h.jsonl", rows), source="h", license=HOSTILE)
    stage = curate.SQLFilter("problem NOT LIKE 'Compute 2%'", reason=HOSTILE)
    return curate.Recipe(HOSTILE, [source], [stage]).run(d / "run")


def test_card_of_a_run_without_responses(plain_run: curate.Run, tmp_path: Path) -> None:
    meta, body = split_card(write_card(plain_run, tmp_path).read_text())
    assert meta == {
        "license": "mit",  # "MIT" and "mit" agree
        "pretty_name": "plain",
        "tags": ["math", "reasoning", "curate"],
        "task_categories": ["text-generation"],
        "size_categories": ["n<1K"],
    }  # no configs: nothing is exported
    assert "| 1 | exact\\_dedup | ExactDedup | 10 | 9 | 1 | duplicate: 1 |" in body
    assert re.search(r"\| a \| \S+a\.jsonl \| jsonl \| 8 \| MIT \| 8 \|", body)
    assert re.search(r"\| b \| \S+b\.jsonl \| jsonl \| 2 \| mit \| 1 \|", body)
    assert "## Pass rates" not in body and "## Problems per difficulty" not in body
    assert "curate.open_run(" in body  # how to read a run that is not exported
    assert plots_of(body) == ["plots/problem_length.png", "plots/source_mix.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "problem_length.png",
        "source_mix.png",
    ]


def test_card_of_a_graded_run_with_responses(graded_run: curate.Run, tmp_path: Path) -> None:
    meta, body = split_card(write_card(graded_run, tmp_path).read_text())
    assert meta["license"] == "apache-2.0" and "configs" not in meta
    problems = graded_run.table("problems").collect()
    assert f"{problems.height} problems from 1 source" in body
    assert f"{problems.height * 8} responses from 2 model(s)" in body  # 4 samples x 2 models
    chosen = int(problems["selected"].list.len().sum())
    assert f"{chosen} of them selected for training" in body
    # difficulties in the Grade stage's bucket order, each with its count
    counts = dict(problems["difficulty"].value_counts().iter_rows())
    listed = re.findall(r"^\| (unsolved|hard|medium|easy|solved) \| (\d+) \|", body, re.M)
    order = ["unsolved", "hard", "medium", "easy", "solved"]
    assert [k for k, _ in listed] == sorted(counts, key=order.index)
    assert {k: int(n) for k, n in listed} == counts
    assert f"- graded problems: {problems.height} of {problems.height}" in body
    n = problems.height * 4
    weak = re.search(rf"^\| weak \| {n} \| (\d+) \| ([\d.]+) \|$", body, re.M)
    assert weak and float(weak.group(2)) == pytest.approx(int(weak.group(1)) / n, abs=1e-3)
    assert plots_of(body) == [
        f"plots/{n}.png"
        for n in ("problem_length", "response_length", "pass_rate", "difficulty", "source_mix")
    ]
    for plot in plots_of(body):
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exported_card_configs_load_with_datasets(graded_run: curate.Run, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "sft"
    result = export_run(graded_run, out, format="sft", test_fraction=0.3, shard_rows=25)
    meta, body = split_card(write_card(graded_run, out, export=out, repo="me/graded").read_text())
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*"},
                {"split": "test", "path": "data/test-*"},
            ],
        }
    ]
    assert [f["name"] for f in meta["dataset_info"]["features"]][:2] == ["messages", "id"]
    for split, files in result.files.items():
        assert sorted(out.glob(f"data/{split}-*")) == sorted(files) and len(files) >= 1
    rows = result.rows
    assert meta["size_categories"] == ["n<1K"]
    assert f"train {rows['train']}, test {rows['test']} rows" in body
    assert "load_dataset('me/graded')" in body
    # what the Hub does with the card: load the folder by its README's configs
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert {s: loaded[s].num_rows for s in loaded} == rows
    assert loaded["train"].features["messages"] == datasets.List(
        {"role": datasets.Value("string"), "content": datasets.Value("string")}
    )


def test_shards_outside_the_card_folder_are_refused(plain_run: curate.Run, tmp_path: Path) -> None:
    export_run(plain_run, tmp_path / "exp", format="verl")
    with pytest.raises(ConfigError, match="outside the card's folder"):
        write_card(plain_run, tmp_path / "elsewhere", export=tmp_path / "exp")
    with pytest.raises(RunError, match=r"no readable export\.json"):
        write_card(plain_run, tmp_path / "c", export=tmp_path / "nothing")


def test_hostile_strings_are_quoted_and_escaped(hostile_run: curate.Run, tmp_path: Path) -> None:
    out = tmp_path / "verl"
    export_run(hostile_run, out, format="verl")
    text = write_card(hostile_run, out, export=out).read_text()
    meta, body = split_card(text)
    assert meta == header_of(hostile_run, out)  # PyYAML reads back exactly what was meant
    assert meta["pretty_name"] == " ".join(HOSTILE.split())
    assert meta["license"] == "other" and re.fullmatch(r"[a-z0-9.-]+", meta["license_name"])
    # Markdown: one line per table row, every cell's pipe escaped, no raw HTML
    prose = outside_fences(body)
    assert "<b>" not in prose and "&lt;b&gt;" in prose
    flat = md_escape(HOSTILE)
    assert "\n" not in flat and re.search(r"(?<!\\)\|", flat) is None
    assert f"# {flat}" in body.splitlines()  # the title is one heading line
    assert f"| {flat}: 1 |" in body  # the SQL filter's reason, in the stages table
    for line in body.splitlines():
        if line.startswith("| "):
            cells = re.split(r"(?<!\\)\|", line)
            assert len(cells) - 2 == len(re.split(r"(?<!\\)\|", body_header(body, line))) - 2
    # literal text sits in fences longer than any backtick run in it
    first = hostile_run.table("problems").collect().sort("id").row(0, named=True)
    assert "````" in first["problem"] and "\n---" in first["problem"]
    assert code_block(first["problem"]).startswith("`````text\n")
    assert code_block(first["problem"]) in body  # verbatim
    assert first["answer"] == HOSTILE and code_block(HOSTILE) in body


def outside_fences(body: str) -> str:
    """The Markdown outside fenced code blocks (a block ends at a fence at least as long)."""
    kept, fence = [], ""
    for line in body.splitlines():
        run = re.match(r"`{3,}", line)
        if not fence and run:
            fence = run.group()
        elif fence and re.fullmatch(r"`{3,}", line) and len(line) >= len(fence):
            fence = ""
        elif not fence:
            kept.append(line)
    assert not fence, "a code block is never closed"
    return "\n".join(kept)


def header_of(run: curate.Run, out: Path) -> dict[str, Any]:
    from curate.export.card import _Export, _Facts

    return header(_Facts.of(run), _Export.of(out, out))


def body_header(body: str, row: str) -> str:
    """The header line of the table that ``row`` belongs to."""
    lines = body.splitlines()
    i = lines.index(row)
    while i > 0 and lines[i - 1].startswith("|"):
        i -= 1
    return lines[i]


def test_regeneration_is_byte_identical(graded_run: curate.Run, tmp_path: Path) -> None:
    first = write_card(graded_run, tmp_path / "a")
    second = write_card(graded_run, tmp_path / "b")
    again = write_card(graded_run, tmp_path / "a")  # over the first
    assert first.read_bytes() == second.read_bytes() == again.read_bytes()
    names = sorted(p.name for p in (tmp_path / "a/plots").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b/plots").iterdir()) and len(names) == 5
    for name in names:
        png = (tmp_path / "a/plots" / name).read_bytes()
        assert png == (tmp_path / "b/plots" / name).read_bytes(), name
        assert b"Software" not in png and b"matplotlib" not in png.lower()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["README.md", "plots"]


def test_empty_run(tmp_path: Path) -> None:
    import datasets

    rows = [
        {"problem": "No answer here.", "answer": None},
        {"problem": "Nor here.", "answer": None},
    ]
    source = curate.read(jsonl(tmp_path / "e.jsonl", rows))
    run = curate.Recipe("empty", [source], [curate.RequireGradable()]).run(tmp_path / "run")
    report = write_card(run, tmp_path / "report").read_text()
    meta, body = split_card(report)
    assert meta["size_categories"] == ["n<1K"] and meta["license"] == "unknown"
    assert "this dataset is empty" in body and "No plots: the run kept no problems." in body
    assert "| e | " in body and "| unknown | 0 |" in body
    assert plots_of(body) == [] and not any((tmp_path / "report/plots").iterdir())
    out = tmp_path / "rl"
    export_run(run, out, format="rl")
    meta, _ = split_card(write_card(run, out, export=out).read_text())
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    # a zero-row split only loads streaming (`datasets` refuses to build one from no data)
    stream = datasets.load_dataset(str(out), streaming=True)
    assert set(stream) == {"train"} and list(stream["train"]) == []
    assert "prompt" in (stream["train"].features or {})


def test_stale_plots_are_removed(
    plain_run: curate.Run, graded_run: curate.Run, tmp_path: Path
) -> None:
    write_card(graded_run, tmp_path)
    assert (tmp_path / "plots/response_length.png").exists()
    write_card(plain_run, tmp_path)  # the folder now describes a run without responses
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "problem_length.png",
        "source_mix.png",
    ]


def test_an_unfinished_run_is_refused(plain_run: curate.Run, tmp_path: Path) -> None:
    manifest = dict(plain_run.manifest, status="running")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="not complete"):
        write_card(tmp_path, tmp_path / "card")
