"""Distill → Grade → selection, on the stage contract: the responses cache, verdicts,
pass rates recomputed from the stored responses, and the selection stages.

The engine here is a small scripted `Generator` (a test double of an inference engine: the
stages' bookkeeping is what is under test). Real generation with a trained toy model, the
crash test and real servers are in test_distill_e2e.py and the backends' own tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _engines import Scripted
from _factories import problems_frame

import curate
from curate.distill import Distill
from curate.errors import ConfigError
from curate.generate import Generator, Request, Sampling
from curate.grade import Grade, pass_at_k
from curate.responses import read_responses
from curate.run import apply_stage
from curate.select import DeepDistillStageI, DeepDistillStageII, PassRateBand
from curate.stage import StageContext

PROBLEMS = [(f"What is {a} + {b}?", str(a + b)) for a, b in [(1, 2), (3, 4), (10, 5), (7, 7)]]


def ctx_for(tmp_path: Path, name: str = "distill") -> StageContext:
    return StageContext(run_dir=tmp_path, cache_dir=tmp_path / "cache", stage_name=name)


def test_scripted_is_a_generator() -> None:
    assert isinstance(Scripted(), Generator)


def test_distill_stores_every_response_and_verdict(tmp_path: Path) -> None:
    rows = problems_frame([*PROBLEMS, ("TRUNCATE What is 1 + 1?", "2"), ("FAIL 1 + 1", "2")])
    rows = pl.concat([rows, problems_frame([("MUMBLE 2 + 2", "4"), ("What is 2 + 2?", None)], "u")])
    gen = Scripted(skill=0.5)
    kept, rejects = apply_stage(Distill(gen, n=4), rows, ctx_for(tmp_path))
    assert rejects.height == 0 and kept["id"].to_list() == rows["id"].to_list()
    responses = read_responses(tmp_path / "responses")
    assert responses.height == rows.height * 4
    assert responses.select("problem_id", "sample").is_unique().all()
    by_id = {pid: g for (pid,), g in responses.group_by("problem_id")}
    trunc, fail, mumble, no_gold = (by_id[i] for i in rows["id"].to_list()[4:8])
    assert set(trunc["verdict"]) == {"truncated"} and not trunc["correct"].any()
    assert set(fail["verdict"]) == {"generation_error"} and set(fail["error"]) == {
        "server said 500 after 6 retries"
    }
    assert set(mumble["verdict"]) == {"no_answer"} and mumble["score"].to_list() == [0.0] * 4
    assert set(no_gold["verdict"]) == {"no_gold"} and no_gold["score"].null_count() == 4
    normal = responses.filter(pl.col("problem_id").is_in(rows["id"].to_list()[:4]))
    # the answer is read after </think>: the \boxed{0} inside the thinking never counts
    assert set(normal["extracted_answer"]) - {"0"} == set(normal["extracted_answer"])
    assert 0 < normal["correct"].sum() < normal.height
    prompt = json.loads(normal["prompt"][0])
    assert prompt[-1]["content"].endswith("output the final answer within \\boxed{}.")
    samples = kept["samples"][0].to_list()
    assert [s["sample"] for s in samples] == [0, 1, 2, 3]
    assert {"model", "score", "correct", "verdict", "finish_reason", "n_tokens"} <= set(samples[0])


def test_rerun_generates_only_missing_keys(tmp_path: Path) -> None:
    rows = problems_frame(PROBLEMS)
    gen = Scripted()
    apply_stage(Distill(gen, n=2), rows[:2], ctx_for(tmp_path))
    first = read_responses(tmp_path / "responses")
    assert gen.calls == [4]
    ctx = ctx_for(tmp_path)
    apply_stage(Distill(gen, n=3), rows, ctx)  # 2 new problems, 1 more sample each
    assert gen.calls == [4, 2 + 2 * 3]
    assert ctx.stats["scripted"]["cached"] == 4 and ctx.stats["scripted"]["generated"] == 8
    after = read_responses(tmp_path / "responses")
    assert after.height == 12
    old = after.join(first, on=["problem_id", "model", "sample", "gen_key"], how="semi")
    assert old.sort("problem_id", "sample").equals(first.sort("problem_id", "sample"))
    gen.calls.clear()
    apply_stage(Distill(gen, n=3), rows, ctx_for(tmp_path))
    assert gen.calls == []  # all cached: the engine is not called at all
    # other sampling settings are other responses: nothing reused
    apply_stage(Distill(gen, n=1, sampling=Sampling(temperature=1.0)), rows, ctx_for(tmp_path))
    assert gen.calls == [4]


def test_a_new_grader_regrades_stored_responses_without_generating(tmp_path: Path) -> None:
    rows = problems_frame(PROBLEMS)
    gen = Scripted(skill=1.0)
    apply_stage(Distill(gen, n=2), rows, ctx_for(tmp_path))
    before = read_responses(tmp_path / "responses").sort("problem_id", "sample")
    assert before["correct"].all() and before["grader"].n_unique() == 1
    # another grader: the whole text read by its last number only (the thinking included)
    strict = curate.VerifyOptions(think="ignore", rules=("last",))
    ctx = ctx_for(tmp_path)
    kept, _ = apply_stage(Distill(gen, n=2, grading=strict), rows, ctx)
    assert gen.calls == [8]  # nothing generated again
    assert ctx.stats["regraded"] == 8 and ctx.stats["scripted"]["cached"] == 8
    after = read_responses(tmp_path / "responses").sort("problem_id", "sample")
    assert after["text"].to_list() == before["text"].to_list()
    assert after["grader"].n_unique() == 1 and after["grader"][0] != before["grader"][0]
    assert kept["samples"][0][0]["extracted_answer"] == after["extracted_answer"][0]
    # the same grader again: nothing to re-grade
    ctx = ctx_for(tmp_path)
    apply_stage(Distill(gen, n=2, grading=strict), rows, ctx)
    assert "regraded" not in ctx.stats and gen.calls == [8]
    # parts written before graders were recorded (no grader column) are re-graded too
    for part in (tmp_path / "responses").glob("*.parquet"):
        pl.read_parquet(part).drop("grader", "verdict_detail").write_parquet(part)
    ctx = ctx_for(tmp_path)
    apply_stage(Distill(gen, n=2), rows, ctx)
    assert ctx.stats["regraded"] == 8
    assert read_responses(tmp_path / "responses")["correct"].all()


def test_what_the_grader_could_not_check_is_not_counted_wrong(tmp_path: Path) -> None:
    rows = problems_frame([("What is 1 + 2?", "3"), ("What is 2 + 2?", r"\frac{4}{")])
    kept, _ = apply_stage(Distill(Scripted(skill=1.0), n=2), rows, ctx_for(tmp_path))
    responses = read_responses(tmp_path / "responses").sort("problem_id")
    unparseable = responses.filter(pl.col("problem_id") == rows["id"][1])
    assert set(unparseable["verdict"]) == {"gold_unparseable"}
    assert unparseable["score"].null_count() == 2 and unparseable["correct"].null_count() == 2
    assert "gold" in unparseable["verdict_detail"][0]
    graded_rows, _ = apply_stage(Grade(), kept, ctx_for(tmp_path, "grade"))
    assert graded_rows["n_samples"].to_list() == [2, 0]  # left out, not "unsolved"
    assert graded_rows["difficulty"].to_list() == ["solved", None]


def test_failed_generations_are_tried_again(tmp_path: Path) -> None:
    rows = problems_frame([("FAIL 1 + 1", "2"), ("What is 1 + 1?", "2")])
    gen = Scripted()
    apply_stage(Distill(gen, n=2), rows, ctx_for(tmp_path))
    assert gen.calls == [4]
    kept, _ = apply_stage(Distill(gen, n=2), rows, ctx_for(tmp_path))
    assert gen.calls == [4, 2]  # only the failed ones again
    stored = read_responses(tmp_path / "responses")
    assert stored.height == 4  # one row per key, not one per try
    assert stored.filter(pl.col("finish_reason") == "error").height == 2
    assert kept["samples"].list.len().to_list() == [2, 2]


def test_runs_are_repeatable(tmp_path: Path) -> None:
    rows = problems_frame(PROBLEMS)
    a, _ = apply_stage(Distill(Scripted(), n=4), rows, ctx_for(tmp_path / "a"))
    b, _ = apply_stage(Distill(Scripted(), n=4), rows, ctx_for(tmp_path / "b"))
    assert a.equals(b)
    ra, rb = read_responses(tmp_path / "a/responses"), read_responses(tmp_path / "b/responses")
    assert ra.sort("problem_id", "sample").equals(rb.sort("problem_id", "sample"))


def test_two_models_in_order(tmp_path: Path) -> None:
    rows = problems_frame(PROBLEMS)
    stage = Distill((Scripted("weak", 0.2), Scripted("strong", 0.9)), n=2)
    kept, _ = apply_stage(stage, rows, ctx_for(tmp_path))
    models = [s["model"] for s in kept["samples"][0].to_list()]
    assert models == ["weak", "weak", "strong", "strong"]


def test_two_labels_of_one_engine_are_two_models(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Unlabelled(Scripted):  # describe() without the label, as real backends do
        def describe(self) -> dict[str, Any]:
            return {"class": "Scripted", "skill": self.skill}

    rows = problems_frame(PROBLEMS)
    stage = Distill((Unlabelled("a"), Unlabelled("b")), n=2)
    kept, _ = apply_stage(stage, rows, ctx_for(tmp_path))
    assert [s["model"] for s in kept["samples"][0].to_list()] == ["a", "a", "b", "b"]
    assert read_responses(tmp_path / "responses").height == 2 * 2 * len(PROBLEMS)


def test_bad_configuration_is_explained() -> None:
    with pytest.raises(ConfigError, match="distinct model labels"):
        Distill((Scripted("a"), Scripted("a")))
    with pytest.raises(ConfigError, match="not a Generator"):
        Distill("gpt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no \\{problem\\}"):
        Distill(Scripted(), template="Solve it.")


def test_a_generator_returning_the_wrong_shape_is_named(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Short(Scripted):
        def generate(self, requests: Sequence[Request], sampling: Sampling) -> Any:
            return super().generate(requests, sampling)[:-1]

    with pytest.raises(ConfigError, match=r"one list of request\.n completions per request"):
        apply_stage(Distill(Short(), n=1), problems_frame(PROBLEMS), ctx_for(tmp_path))


def graded(tmp_path: Path, n: int = 4) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows = problems_frame([(f"What is {a} + {b}?", str(a + b)) for a in range(6) for b in range(5)])
    rows = pl.concat([rows, problems_frame([("FAIL x", "1"), ("What is 2 + 2?", None)], "z")])
    stage = Distill((Scripted("weak", 0.3), Scripted("strong", 0.8)), n=n)
    distilled, _ = apply_stage(stage, rows, ctx_for(tmp_path))
    out, _ = apply_stage(Grade(pass_at=(1, 2, 8)), distilled, ctx_for(tmp_path, "grade"))
    return out, read_responses(tmp_path / "responses")


def test_grade_matches_a_recomputation_from_the_responses(tmp_path: Path) -> None:
    out, responses = graded(tmp_path)
    counted = responses.filter(pl.col("finish_reason") != "error", pl.col("score").is_not_null())
    for row in out.iter_rows(named=True):
        mine = counted.filter(pl.col("problem_id") == row["id"])
        n, c = mine.height, int(mine["correct"].sum())
        assert row["n_samples"] == n and row["n_correct"] == c
        if n == 0:
            assert row["pass_rate"] is None and row["cv"] is None and row["difficulty"] is None
            continue
        p = c / n
        assert row["pass_rate"] == pytest.approx(p)
        scores = mine["score"].to_list()
        mean = sum(scores) / n
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / n)
        if c == 0:
            assert row["cv"] is None
        else:
            assert row["cv"] == pytest.approx(std / mean)
            assert row["cv"] == pytest.approx(math.sqrt((1 - p) / p))
        for k in (1, 2, 8):
            assert row[f"pass_at_{k}"] == pytest.approx(pass_at_k(n, c, k))
        per = [
            (m, g.height, int(g["correct"].sum()))
            for m in ("weak", "strong")
            for g in [mine.filter(pl.col("model") == m)]
        ]
        assert row["pass_rates"] == pytest.approx([cc / nn for _, nn, cc in per])
        assert [(b["model"], b["n"], b["correct"]) for b in row["by_model"]] == per
    assert set(out["difficulty"].drop_nulls()) <= {"unsolved", "hard", "medium", "easy", "solved"}
    fail = out.filter(pl.col("id").str.starts_with("z:0"))
    assert fail["n_failed"][0] == 8 and fail["n_samples"][0] == 0


def test_pass_at_k_estimator() -> None:
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))
    assert pass_at_k(3, 1, 4) is None


def test_stage_one_selection(tmp_path: Path) -> None:
    out, _ = graded(tmp_path)
    stage = DeepDistillStageI(easy_keep=0.5)
    kept, rejects = apply_stage(stage, out, ctx_for(tmp_path, "stage1"))
    assert kept.height + rejects.height == out.height
    assert set(kept["id"]).isdisjoint(rejects["id"])
    for row in kept.iter_rows(named=True):
        passing = [(s["model"], s["sample"]) for s in row["samples"] if s["correct"]]
        assert [(s["model"], s["sample"]) for s in row["selected"]] == passing
        assert passing
    reasons = dict(rejects.group_by("reason").len().iter_rows())
    nothing = out.filter(pl.col("n_correct") == 0).height
    assert reasons["no_passing_response"] == nothing
    dropped = rejects.filter(pl.col("reason") == "easy_not_sampled")
    assert (dropped["cv"] == 0).all()  # only easy problems are sampled out
    assert dropped.height <= out.filter(pl.col("cv") == 0).height
    again, _ = apply_stage(stage, out.reverse(), ctx_for(tmp_path, "stage1"))
    assert sorted(again["id"]) == sorted(kept["id"])  # drawn per id, not per position
    _, rej = apply_stage(DeepDistillStageI(easy_keep=1.0), out, ctx_for(tmp_path, "s"))
    assert set(rej["reason"]) == {"no_passing_response"}


def test_stage_two_takes_the_highest_cv_and_one_response(tmp_path: Path) -> None:
    out, _ = graded(tmp_path)
    first, _ = apply_stage(DeepDistillStageI(easy_keep=1.0), out, ctx_for(tmp_path, "i"))
    kept, rejects = apply_stage(DeepDistillStageII(top=5), first, ctx_for(tmp_path, "ii"))
    assert kept.height == 5 and kept.height + rejects.height == first.height
    assert kept["cv"].min() >= rejects["cv"].drop_nulls().max()
    for row in kept.iter_rows(named=True):
        assert len(row["selected"]) == 1
        chosen = row["selected"][0]
        assert any(
            s["model"] == chosen["model"] and s["sample"] == chosen["sample"] and s["correct"]
            for s in row["samples"]
        )
    half, _ = apply_stage(DeepDistillStageII(fraction=0.5), out, ctx_for(tmp_path, "ii"))
    assert half.height == round(0.5 * out.filter(pl.col("n_correct") > 0).height)
    with pytest.raises(ConfigError, match="exactly one"):
        DeepDistillStageII()


def test_pass_rate_band(tmp_path: Path) -> None:
    out, _ = graded(tmp_path)
    kept, rejects = apply_stage(PassRateBand(), out, ctx_for(tmp_path, "band"))
    assert kept["pass_rate"].min() > 0.1 and kept["pass_rate"].max() < 0.9
    for reason, bad in [("too_hard", lambda p: p <= 0.1), ("too_easy", lambda p: p >= 0.9)]:
        got = rejects.filter(pl.col("reason") == reason)
        assert all(bad(p) for p in got["pass_rate"])
    assert set(rejects["reason"]) <= {"too_hard", "too_easy", "ungraded"}
    assert "ungraded" in set(rejects["reason"])


def test_queryable_with_sql(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"problem": p, "answer": a}) + "\n" for p, a in PROBLEMS))
    recipe = curate.Recipe(
        "distill", [curate.read(pool)], [Distill(Scripted(), n=2), Grade(pass_at=(1, 2))]
    )
    run = recipe.run(tmp_path / "run")
    top = run.sql("SELECT id, pass_rate, cv, difficulty FROM problems ORDER BY id")
    assert top.height == len(PROBLEMS)
    joined = run.sql(
        "SELECT count(*) AS n, sum(CASE WHEN correct THEN 1 ELSE 0 END) AS c FROM responses"
    )
    assert joined["n"][0] == 2 * len(PROBLEMS)
    again = recipe.run(tmp_path / "run")
    assert again.stages[1].seconds == run.stages[1].seconds  # unchanged: skipped


def test_samples_are_the_same_in_any_number_of_buckets(tmp_path: Path) -> None:
    """`_samples` gathers the responses in buckets of a hash of the problem id: the column
    (order, values, which copy of a key stored twice) does not depend on how many."""
    from curate.distill import _samples
    from curate.responses import ResponsesTable

    rows = problems_frame([*PROBLEMS, ("FAIL 1 + 1", "2"), ("What is 6 + 6?", "12")])
    weak, strong = Scripted("weak", 0.3), Scripted("strong", 0.8)
    stage = Distill((weak, strong), n=3)
    kept, _ = apply_stage(stage, rows, ctx_for(tmp_path))
    table = ResponsesTable(tmp_path / "responses")
    wanted = [(g.model, stage.gen_key(g)) for g in (weak, strong)]
    keys = [k for _, k in wanted]
    assert _samples(table, keys, rows["id"], wanted, buckets=3).equals(kept["samples"])
    stored = table.read()
    # keys stored twice, in a part named after the others: a good copy of a failed response
    # (the copy kept) and another verdict for a response that did not fail (not kept)
    failed = stored.filter(pl.col("finish_reason") == "error").head(1)
    good = stored.filter(pl.col("finish_reason") == "stop").head(1)
    copies = pl.concat(
        [
            failed.with_columns(finish_reason=pl.lit("stop"), verdict=pl.lit("wrong")),
            good.with_columns(verdict=pl.lit("copy")),
        ]
    )
    gen_key = stage.gen_key(weak if failed["model"][0] == "weak" else strong)
    assert set(copies["gen_key"]) == {gen_key}
    table.write(copies.to_dicts(), table.part(gen_key, "z" * 16))
    ids = pl.concat([rows["id"], pl.Series(["no-such-problem"])])  # null samples
    one = _samples(table, keys, ids, wanted)
    assert one.len() == ids.len() and one.null_count() == 1
    for buckets in (2, 3, 7):
        assert _samples(table, keys, ids, wanted, buckets=buckets).equals(one)
    verdicts = one.explode().struct.field("verdict").to_list()
    assert "wrong" in verdicts and "copy" not in verdicts


def test_samples_in_buckets_are_routed_beside_the_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more than one bucket, `_samples` reads the parts once and routes their compact
    columns to bucket files in a hidden folder of the responses table, gone afterwards; few
    open files and tiny writes (a bucket in many files) give the same column."""
    from curate import responses
    from curate.distill import _samples

    rows = problems_frame(PROBLEMS)
    stage = Distill(Scripted(), n=3, chunk=1)  # a part per problem
    kept, _ = apply_stage(stage, rows, ctx_for(tmp_path))
    table = responses.ResponsesTable(tmp_path / "responses")
    wanted = [(Scripted().model, stage.gen_key(Scripted()))]
    keys = [k for _, k in wanted]
    monkeypatch.setattr(responses, "OPEN_BUCKETS", 1)
    monkeypatch.setattr(responses, "ROUTE_BYTES", 1)
    folders: list[Path] = []
    read = responses.Buckets.read

    def spy(self: responses.Buckets, bucket: int) -> pl.DataFrame:
        folders.append(self.folder)
        return read(self, bucket)

    monkeypatch.setattr(responses.Buckets, "read", spy)
    assert _samples(table, keys, rows["id"], wanted, buckets=3).equals(kept["samples"])
    assert folders and {f.parent for f in folders} == {table.path}
    assert sorted(p.name for p in table.path.iterdir()) == sorted(p.name for p in table.parts())
