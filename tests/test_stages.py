"""Every stage conserves rows: kept ∪ rejected = input by id, none in both, no field changed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from _factories import problems_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import curate
from curate.run import apply_stage
from curate.stage import Filter, Stage, StageContext

PROBLEMS = st.sampled_from(
    [
        "What is $1+1$?",
        "what is 1 + 1 ?",
        r"Compute $\dfrac{1}{2} + \frac{1}{3}$.",
        r"Compute $\frac{1}{2}+\frac{1}{3}$.",
        "Find all real x with x^2 = 4.",
        "",
        "   ",
    ]
) | st.text(max_size=40)
ANSWERS = st.sampled_from(
    [
        None,
        "",
        "42",
        r"\frac{5}{6}",
        "x^2+1",
        r"\text{Monday}",
        "Proof",
        "(1,2)",
        r"\sqrt{2}",
        "a" * 300,
        r"x \mapsto 2x",
        "0.5",
        r"\text{(C)}",
    ]
)
ROWS = st.lists(st.tuples(PROBLEMS, ANSWERS), max_size=25)

STAGES: list[Stage] = [
    curate.ExactDedup(),
    curate.ExactDedup(keep="last"),
    curate.ExactDedup(on=("text_hash", "answer")),
    curate.SQLFilter("length(problem) > 10 AND answer IS NOT NULL", reason="short"),
    curate.RequireGradable(),
    curate.RequireGradable(allow_text=False, max_length=50),
    curate.Mix(total=5),
    curate.Mix(per_source=2, stratify="level"),
    curate.LanguageFilter(),
    curate.FigureFilter(),
    curate.MultipleChoiceFilter(),
    curate.ProofFilter(),
    curate.LengthFilter(),
    curate.QueryFilter(),
]


def assert_conserved(rows: pl.DataFrame, kept: pl.DataFrame, rejects: pl.DataFrame) -> None:
    kept_ids, rejected_ids = set(kept["id"]), set(rejects["id"])
    assert kept_ids.isdisjoint(rejected_ids)
    assert kept_ids | rejected_ids == set(rows["id"])
    assert kept.height + rejects.height == rows.height
    back = pl.concat([kept.select(rows.columns), rejects.select(rows.columns)])
    assert back.sort("id").equals(rows.sort("id")), "a field changed"
    assert rejects["reason"].null_count() == 0
    # kept rows keep their input order
    order = {i: n for n, i in enumerate(rows["id"])}
    assert [order[i] for i in kept["id"]] == sorted(order[i] for i in kept["id"])


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: f"{s.name}{s.config()}")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=ROWS)
def test_every_stage_conserves_rows(stage: Stage, data: list[tuple[str, str | None]]) -> None:
    rows = problems_frame(data)
    kept, rejects = apply_stage(stage, rows)
    assert_conserved(rows, kept, rejects)
    assert set(rejects["stage"]) <= {stage.name}


def test_exact_dedup_keeps_first_and_names_keeper() -> None:
    rows = problems_frame(
        [("What is $1+1$?", "2"), ("Other", "1"), ("what is 1 + 1 ?", "2"), ("WHAT IS 1+1?", "3")]
    )
    ctx = StageContext(run_dir=pl_tmp(), cache_dir=pl_tmp(), stage_name="exact_dedup")
    kept, rejects = apply_stage(curate.ExactDedup(), rows, ctx)
    first = rows["id"][0]
    assert kept["id"].to_list() == [first, rows["id"][1]]
    assert rejects["detail"].to_list() == [first, first]
    assert rejects["reason"].unique().to_list() == ["duplicate"]
    assert kept.filter(pl.col("id") == first)["dup_count"].item() == 3
    assert kept.filter(pl.col("id") == first)["answer_conflict"].item() is True
    assert ctx.stats == {"duplicate_groups": 1, "conflicting_groups": 1}

    kept_last, _ = apply_stage(curate.ExactDedup(keep="last"), rows)
    assert kept_last["id"].to_list() == [rows["id"][1], rows["id"][3]]


def test_exact_dedup_equal_answers_after_normalization_do_not_conflict() -> None:
    rows = problems_frame([("Q?", r"\dfrac{1}{2}"), ("q ?", r"$\frac{1}{2}$"), ("q?", None)])
    kept, _ = apply_stage(curate.ExactDedup(), rows)
    assert kept["answer_conflict"].to_list() == [False]


def test_require_gradable_reasons_and_kinds() -> None:
    rows = problems_frame(
        [
            ("a", "42"),
            ("b", None),
            ("c", "Proof"),
            ("d", r"x \mapsto 2x"),
            ("e", "x" * 500),
            ("f", r"\text{Monday}"),
            ("g", r"\left[ 2, 5 \right)"),
        ]
    )
    kept, rejects = apply_stage(curate.RequireGradable(), rows)
    assert kept["problem"].to_list() == ["a", "f", "g"]
    assert kept["answer_kind"].to_list() == ["number", "text", "expression"]
    reasons = dict(zip(rejects["problem"], rejects["reason"], strict=True))
    assert reasons == {
        "b": "missing_answer",
        "c": "not_an_answer",
        "d": "unparseable_answer",
        "e": "answer_too_long",
    }
    _, rejects = apply_stage(curate.RequireGradable(allow_text=False), rows)
    assert "text_answer" in rejects["reason"].to_list()


def test_sql_filter_rejects_false_and_null_and_reports_bad_sql() -> None:
    rows = problems_frame([("short", "1"), ("a much longer problem", None)])
    kept, rejects = apply_stage(curate.SQLFilter("length(answer) > 0", reason="no_answer"), rows)
    assert kept["problem"].to_list() == ["short"]
    assert rejects.select("reason", "detail").row(0) == ("no_answer", "not (length(answer) > 0)")
    with pytest.raises(curate.ConfigError, match="not a valid condition"):
        apply_stage(curate.SQLFilter("no_such_column > 1"), rows)


def test_a_stage_that_drops_rows_is_refused() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Dropper(Filter):
        def apply(self, rows: pl.LazyFrame, ctx: StageContext) -> pl.LazyFrame:
            return rows.filter(pl.col("answer").is_not_null())

    rows = problems_frame([("a", "1"), ("b", None)])
    with pytest.raises(curate.RunError, match="every input row"):
        apply_stage(Dropper(), rows)


def test_a_stage_cannot_change_canonical_fields() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Rewriter(Stage):
        def apply(self, rows: pl.LazyFrame, ctx: StageContext) -> pl.LazyFrame:
            return rows.with_columns(pl.lit("changed").alias("problem"), pl.lit(1).alias("score"))

    rows = problems_frame([("a", "1")])
    kept, _ = apply_stage(Rewriter(), rows)
    assert kept["problem"].to_list() == ["a"]
    assert kept["score"].to_list() == [1]


def pl_tmp() -> Path:
    return Path(tempfile.mkdtemp())
