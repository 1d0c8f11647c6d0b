"""SFT exports made of reference solutions (``completions=``), duplicate (prompt, completion)
pairs exported once, and what an export says about how to score it (``reward``, the card).

The runs with responses use the scripted `Generator` of test_export.py.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _engines import Scripted

import curate
from curate.distill import DEFAULT_TEMPLATE
from curate.errors import ConfigError, RunError
from curate.export import export_run, write_card
from curate.export.formats import VERL_REWARD_MODULE, reward_entry

jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
ONE_PLUS_ONE = "One and one make $\\boxed{2}$."
# what the scripted model writes when it answers "What is 1 + 1?" right (an even sample)
SCRIPTED_1_PLUS_1 = "<think>\n1? no, \\boxed{0}. hm hm</think>\nSo \\boxed{2}."
VERL_PATH = '"$(python -m curate.reward.verl)"'


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("solutions")


@pytest.fixture(scope="module")
def solutions_run(tmp: Path) -> curate.Run:
    """Two sources, one problem in both with the same solution (no dedup stage), one
    problem without a solution; no responses."""
    a = _jsonl(
        tmp / "a.jsonl",
        [
            {"problem": "What is 1 + 1?", "answer": "2", "solution": ONE_PLUS_ONE},
            {"problem": "What is 2 + 2?", "answer": "4", "solution": None},
            {"problem": "What is 4 + 4?", "answer": "8", "solution": "4 + 4 = $\\boxed{8}$"},
        ],
    )
    b = _jsonl(
        tmp / "b.jsonl",
        [
            {"problem": "What is 1 + 1?", "answer": "2", "solution": ONE_PLUS_ONE},
            {"problem": "What is 5 + 5?", "answer": "10", "solution": "$\\boxed{10}$"},
        ],
    )
    sources = [curate.read(a, source="a"), curate.read(b, source="b")]
    return curate.Recipe("solutions", sources, []).run(tmp / "run")


@pytest.fixture(scope="module")
def distilled_run(tmp: Path) -> curate.Run:
    """Responses of a scripted model, and solutions: one of them the very text the model
    writes when right."""
    rows = [
        {"problem": "What is 1 + 1?", "answer": "2", "solution": SCRIPTED_1_PLUS_1},
        {"problem": "What is 2 + 3?", "answer": "5", "solution": "$\\boxed{5}$"},
        {"problem": "What is 3 + 3?", "answer": "6"},
    ]
    pool = _jsonl(tmp / "sums.jsonl", rows)
    stages = [curate.Distill(Scripted("weak", 0.8), n=4)]
    return curate.Recipe("distilled", [curate.read(pool)], stages).run(tmp / "dist", workers=1)


def _rows(result: Any) -> list[dict[str, Any]]:
    return [r for split in result.files for r in pl.read_parquet(result.files[split]).to_dicts()]


def _pair(row: dict[str, Any]) -> tuple[str, str]:
    """(prompt messages, completion) of an sft row."""
    return json.dumps(row["messages"][:-1]), row["messages"][-1]["content"]


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "export.json").read_text())


# --- completions="solutions" -----------------------------------------------------------------


def test_sft_of_reference_solutions(solutions_run: curate.Run, tmp: Path) -> None:
    out = tmp / "sft"
    result = export_run(solutions_run, out, format="sft", completions="solutions")
    assert (result.completions, result.without_solution, result.duplicates) == ("solutions", 1, 1)
    problems = {r["id"]: r for r in solutions_run.table("problems").collect().to_dicts()}
    rows = _rows(result)
    assert result.rows == {"train": 3} and len(rows) == 3
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / "sft.schema.json").read_text())
    )
    for row in rows:
        validator.validate(row)
        problem = problems[row["problem_id"]]
        assert (row["model"], row["sample"], row["n_tokens"]) == ("reference", 0, None)
        assert row["id"] == f"{row['problem_id']}/reference/0"
        assert row["messages"] == [
            {"role": "user", "content": DEFAULT_TEMPLATE.replace("{problem}", problem["problem"])},
            {"role": "assistant", "content": problem["solution"]},
        ]
        assert row["answer"] == problem["answer"] and row["source"] == problem["source"]
    ids = [r["problem_id"] for r in rows]
    assert ids == sorted(ids)
    # "What is 1 + 1?" from both sources: the first by id is kept
    twice = [r["problem_id"] for r in rows if r["messages"][-1]["content"] == ONE_PLUS_ONE]
    assert len(twice) == 1 and twice[0].startswith("a:")
    manifest = _manifest(out)
    assert manifest["completions"] == {
        "source": "solutions",
        "rows": {"responses": 0, "solutions": 3},
        "without_solution": 1,
        "duplicates": 1,
    }
    assert manifest["options"]["completions"] == "solutions"
    assert "reward" not in manifest
    # auto: the run has no responses, so its solutions, the same rows
    auto = export_run(solutions_run, tmp / "sft-auto", format="sft")
    assert auto.completions == "solutions"
    assert _rows(auto) == rows
    assert _manifest(tmp / "sft-auto")["completions"] == manifest["completions"]


def test_trl_of_solutions_with_a_template_and_a_test_split(
    solutions_run: curate.Run, tmp: Path
) -> None:
    seen = set()
    for seed in range(4):  # wherever the split puts the two copies, one pair is written
        result = export_run(
            solutions_run,
            tmp / f"trl-{seed}",
            format="trl",
            completions="solutions",
            test_fraction=0.5,
            seed=seed,
            system_prompt="Be brief.",
            template="Q: {problem}",
        )
        assert sum(result.rows.values()) == 3 and result.duplicates == 1
        rows = _rows(result)
        assert len({(json.dumps(r["prompt"]), json.dumps(r["completion"])) for r in rows}) == 3
        for row in rows:
            assert row["prompt"][0] == {"role": "system", "content": "Be brief."}
            assert row["prompt"][1]["content"].startswith("Q: What is ")
            assert [m["role"] for m in row["completion"]] == ["assistant"]
        seen.add(tuple(result.rows.values()))
    assert len(seen) > 1  # the seeds did split the rows differently


def test_has_solution_counts_blank_as_missing() -> None:
    from curate.export.shards import _solution_given

    def given(frame: pl.DataFrame) -> list[bool]:
        return frame.select(_solution_given(frame.columns)).to_series().to_list()

    frame = pl.DataFrame({"solution": ["x", " \n", None, ""]}, schema={"solution": pl.String})
    assert given(frame) == [True, False, False, False]
    assert given(pl.DataFrame({"id": ["a"]})) == [False]


# --- choices the run cannot satisfy ----------------------------------------------------------


def test_errors_say_how_to_fix(solutions_run: curate.Run, tmp: Path) -> None:
    with pytest.raises(RunError, match=r"has no responses .*--completions solutions"):
        export_run(solutions_run, tmp / "x", format="sft", completions="responses")
    with pytest.raises(RunError, match=r"has no responses"):
        export_run(solutions_run, tmp / "x", format="trl", completions="both")
    with pytest.raises(ConfigError, match=r"completions='solutions' with format 'verl'"):
        export_run(solutions_run, tmp / "x", format="verl", completions="solutions")
    with pytest.raises(ConfigError, match=r"completions='answers': expected one of"):
        export_run(solutions_run, tmp / "x", format="sft", completions="answers")  # type: ignore[arg-type]
    nothing = _jsonl(tmp / "nothing.jsonl", [{"problem": "What is 1 + 1?", "answer": "2"}])
    run = curate.Recipe("nothing", [curate.read(nothing)], []).run(tmp / "nothing")
    with pytest.raises(RunError, match=r"none of the 1 problems .* has a reference solution"):
        export_run(run, tmp / "x", format="sft", completions="solutions")
    with pytest.raises(RunError, match=r"neither responses .* nor reference solutions"):
        export_run(run, tmp / "x", format="sft")
    assert not (tmp / "x").exists()


def test_both_refuses_a_model_labelled_reference(tmp: Path) -> None:
    pool = _jsonl(tmp / "ref.jsonl", [{"problem": "What is 1 + 1?", "solution": "\\boxed{2}"}])
    stages = [curate.Distill(Scripted("reference", 1.0), n=1)]
    run = curate.Recipe("ref", [curate.read(pool)], stages).run(tmp / "ref", workers=1)
    with pytest.raises(ConfigError, match=r"labelled 'reference'.*separately"):
        export_run(run, tmp / "ref-out", format="sft", completions="both")
    assert export_run(run, tmp / "ref-out", format="sft").completions == "responses"


# --- responses, solutions, both --------------------------------------------------------------


def test_both_is_responses_and_solutions_each_pair_once(
    distilled_run: curate.Run, tmp: Path
) -> None:
    responses = export_run(distilled_run, tmp / "r", format="sft", completions="responses")
    solutions = export_run(distilled_run, tmp / "s", format="sft", completions="solutions")
    auto = export_run(distilled_run, tmp / "auto", format="sft")
    assert auto.completions == "responses" and _rows(auto) == _rows(responses)
    assert responses.without_solution is None and solutions.without_solution == 1
    # the scripted model repeats its text: its samples were exported once each
    assert responses.duplicates > 0
    r_rows, s_rows = _rows(responses), _rows(solutions)
    assert SCRIPTED_1_PLUS_1 in {r["messages"][-1]["content"] for r in r_rows}

    both = export_run(distilled_run, tmp / "b", format="sft", completions="both")
    rows = _rows(both)
    pairs = [_pair(r) for r in rows]
    assert len(pairs) == len(set(pairs)) == len({_pair(r) for r in r_rows + s_rows})
    # the solution of 1 + 1 is the model's text: the reference row (first by model) stays
    same = [r for r in rows if r["messages"][-1]["content"] == SCRIPTED_1_PLUS_1]
    assert [r["model"] for r in same] == ["reference"]
    assert both.duplicates == responses.duplicates + 1
    keys = [(r["problem_id"], r["model"], r["sample"]) for r in rows]
    assert keys == sorted(keys)
    assert _manifest(tmp / "b")["completions"] == {
        "source": "both",
        "rows": {"responses": len(r_rows) - 1, "solutions": len(s_rows)},
        "without_solution": 1,
        "duplicates": both.duplicates,
    }


# --- how to score it: export.json and the card -----------------------------------------------


def test_verl_export_says_how_to_score_it(solutions_run: curate.Run, tmp: Path) -> None:
    out = tmp / "verl"
    export_run(solutions_run, out, format="verl")
    reward = _manifest(out)["reward"]
    assert reward == {
        "module": "curate.reward.verl",
        "custom_reward_function": {"path": VERL_PATH, "name": "compute_score"},
        "overrides": [
            f"custom_reward_function.path={VERL_PATH}",
            "custom_reward_function.name=compute_score",
        ],
    }
    card = write_card(solutions_run, out, export=out).read_text()
    assert "## Training with verl" in card and "## Training with TRL" not in card
    assert f"  custom_reward_function.path={VERL_PATH} \\\n" in card
    assert "  custom_reward_function.name=compute_score\n" in card
    assert "`compute_score` of `curate.reward.verl`" in card


def test_rl_card_names_trl_reward_and_sft_card_the_completions(
    solutions_run: curate.Run, tmp: Path
) -> None:
    out = tmp / "rl"
    export_run(solutions_run, out, format="rl")
    assert _manifest(out)["reward"] == {"trl": "curate.reward.accuracy_reward"}
    card = write_card(solutions_run, out, export=out).read_text()
    assert "## Training with TRL" in card and "Training with verl" not in card
    assert "from curate.reward import accuracy_reward" in card
    assert "reward_funcs=[accuracy_reward]" in card

    out = tmp / "sft-card"
    export_run(solutions_run, out, format="sft", completions="solutions")
    card = write_card(solutions_run, out, export=out).read_text()
    assert "Assistant messages: the problems' reference solutions (model `reference`" in card
    assert "Problems without a reference solution, left out: 1." in card
    assert "Duplicate (prompt, completion) pairs dropped: 1." in card
    assert "## Training with" not in card


def test_export_names_the_reward_module_without_importing_it() -> None:
    """Export comes before curate.reward: it names the scorer in one constant, never
    imports it."""
    folder = Path(curate.export.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n.startswith("curate.reward")], path
    assert reward_entry("verl")["module"] == VERL_REWARD_MODULE  # type: ignore[index]
    assert reward_entry("sft") is None
    assert reward_entry("trl") == {"trl": "curate.reward.accuracy_reward"}
