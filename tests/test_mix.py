"""Mix: per-source counts, weights, totals, strata; seeded, nested, batch- and order-free."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest

import curate
from curate.errors import ConfigError
from curate.mix import Mix, allocate
from curate.run import apply_stage
from curate.stage import StageContext


def _rows(counts: dict[str, int], levels: int = 1) -> pl.DataFrame:
    ids, sources, level = [], [], []
    for source, n in counts.items():
        for i in range(n):
            ids.append(f"{source}:{i}")
            sources.append(source)
            level.append(str(i % levels + 1))
    return pl.DataFrame({"id": ids, "source": sources, "level": level})


def _run(stage: Mix, rows: pl.DataFrame, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    ctx = StageContext.temporary("mix")
    ctx.seed = seed
    kept, rejects = apply_stage(stage, rows, ctx)
    assert set(kept["id"]).isdisjoint(rejects["id"])
    assert sorted([*kept["id"], *rejects["id"]]) == sorted(rows["id"])
    return kept, rejects, ctx.stats["mix"]


def _counts(kept: pl.DataFrame, by: str = "source") -> dict[str, int]:
    return dict(kept.group_by(by).len().rows())


def test_per_source_takes_all_of_a_short_source_and_says_so() -> None:
    kept, rejects, stats = _run(Mix(per_source=5), _rows({"a": 20, "b": 3}))
    assert _counts(kept) == {"a": 5, "b": 3}
    assert set(rejects["reason"]) == {"not_sampled"}
    assert rejects["detail"][0] == "source a: 5 of 20 drawn"
    assert stats["short_sources"] == ["b"] and stats["sources"]["b"]["short"] == 2


def test_per_source_dict_gives_nothing_from_unnamed_sources() -> None:
    kept, rejects, stats = _run(Mix(per_source={"a": 4, "zz": 9}), _rows({"a": 10, "b": 5}))
    assert _counts(kept) == {"a": 4}
    assert "source b: 0 of 5 drawn" in set(rejects["detail"])
    assert stats["sources_not_in_input"] == ["zz"]


def test_weights_are_shares_of_the_total_and_need_not_sum_to_one() -> None:
    rows = _rows({"a": 100, "b": 100, "c": 50})
    kept, _, stats = _run(Mix(weights={"a": 0.7, "b": 0.3}, total=40), rows)
    assert _counts(kept) == {"a": 28, "b": 12}  # c has no weight
    ratio, _, stats2 = _run(Mix(weights={"a": 7, "b": 3}, total=40), rows)
    assert ratio["id"].to_list() == kept["id"].to_list()
    assert "weights_normalized" not in stats and stats2["weights_normalized"]["a"] == 0.7


def test_short_source_fill_keeps_the_total_scale_keeps_the_shares() -> None:
    rows = _rows({"a": 100, "b": 5})
    filled, _, stats = _run(Mix(weights={"a": 1, "b": 1}, total=40), rows)
    assert _counts(filled) == {"a": 35, "b": 5}
    assert stats["short_sources"] == ["b"] and stats["sources"]["b"]["asked"] == 20
    scaled, _, stats = _run(Mix(weights={"a": 1, "b": 1}, total=40, short="scale"), rows)
    assert _counts(scaled) == {"a": 5, "b": 5} and stats["drawn"] == 10


def test_weights_without_total_give_the_biggest_exact_mix() -> None:
    kept, _, _ = _run(Mix(weights={"a": 0.75, "b": 0.25}), _rows({"a": 30, "b": 100}))
    assert _counts(kept) == {"a": 30, "b": 10}


def test_total_alone_is_proportional_to_source_sizes() -> None:
    kept, _, stats = _run(Mix(total=30), _rows({"a": 80, "b": 40}))
    assert _counts(kept) == {"a": 20, "b": 10} and stats["drawn"] == 30
    everything, rejects, _ = _run(Mix(total=500), _rows({"a": 8}))
    assert everything.height == 8 and rejects.height == 0


def test_strata_proportional_and_equal() -> None:
    rows = pl.concat(
        [
            pl.DataFrame({"id": [f"e{i}" for i in range(60)], "level": "1"}),
            pl.DataFrame({"id": [f"m{i}" for i in range(30)], "level": "2"}),
            pl.DataFrame({"id": [f"h{i}" for i in range(4)], "level": "3"}),
            pl.DataFrame(
                {"id": ["n0", "n1"], "level": [None, None]}, schema_overrides={"level": pl.String}
            ),
        ]
    ).with_columns(source=pl.lit("s"))
    kept, rejects, stats = _run(Mix(total=48, stratify="level"), rows)
    assert _counts(kept, "level") == {"1": 30, "2": 15, "3": 2, None: 1}
    assert "source s, level 1: 30 of 60 drawn" in set(rejects["detail"])
    equal, _, stats = _run(Mix(total=48, stratify="level", strata="equal"), rows)
    # level 3 and the null stratum give all they have; levels 1 and 2 make up the rest
    assert _counts(equal, "level") == {"1": 21, "2": 21, "3": 4, None: 2}
    assert stats["sources"]["s"]["strata"]["3"] == [4, 4]


def test_pass_rate_bins_and_empty_bins() -> None:
    rates = [0.0] * 10 + [0.3] * 10 + [1.0] * 10
    rows = pl.DataFrame({"id": [f"p{i}" for i in range(30)], "source": "s", "pass_rate": rates})
    stage = Mix(total=9, stratify="pass_rate", bins=(0.25, 0.5, 0.75), strata="equal")
    kept, _, stats = _run(stage, rows)
    assert sorted(kept["pass_rate"].to_list()) == [0.0] * 3 + [0.3] * 3 + [1.0] * 3
    assert set(stats["sources"]["s"]["strata"]) == {"< 0.25", "[0.25, 0.5)", ">= 0.75"}
    assert stats["empty_strata"] == ["[0.5, 0.75)"]
    with pytest.raises(ConfigError, match="bins need numbers"):
        _run(Mix(total=3, stratify="source", bins=(1.0,)), rows)


def test_seeded_nested_and_independent_of_row_order() -> None:
    rows = _rows({"a": 200, "b": 100})
    small, _, _ = _run(Mix(total=20), rows)
    big, _, _ = _run(Mix(total=60), rows)
    assert set(small["id"]) < set(big["id"])  # asking for more keeps what was drawn
    shuffled, _, _ = _run(Mix(total=20), rows.sample(fraction=1.0, shuffle=True, seed=3))
    assert set(shuffled["id"]) == set(small["id"])
    other, _, _ = _run(Mix(total=20), rows, seed=1)
    assert set(other["id"]) != set(small["id"])
    assert set(_run(Mix(total=20, seed=5), rows)[0]["id"]) != set(small["id"])


@dataclass(frozen=True)
class _TinyBatches(Mix):
    batch_rows: ClassVar[int] = 7


def _write(path: Path, counts: dict[str, int]) -> list[curate.Source]:
    sources = []
    for name, n in counts.items():
        file = path / f"{name}.jsonl"
        lines = [
            json.dumps({"problem": f"{name} {i} + 1?", "answer": str(i + 1), "level": str(i % 3)})
            for i in range(n)
        ]
        file.write_text("\n".join(lines) + "\n")
        sources.append(curate.read(file, source=name))
    return sources


def test_in_a_run_batches_do_not_change_the_draw(tmp_path: Path) -> None:
    sources = _write(tmp_path, {"math": 30, "gsm8k": 10})
    stage = dict(weights={"math": 2, "gsm8k": 1}, total=15, stratify="level")
    one = curate.Recipe("a", sources, [Mix(**stage)]).run(tmp_path / "one")  # type: ignore[arg-type]
    many = curate.Recipe("b", sources, [_TinyBatches(**stage)]).run(tmp_path / "many")  # type: ignore[arg-type]
    ids = [r.table("problems").collect()["id"].sort().to_list() for r in (one, many)]
    assert ids[0] == ids[1] and len(ids[0]) == 15
    rejects = one.sql("SELECT reason, count(*) FROM rejects GROUP BY 1").rows()
    assert rejects == [("not_sampled", 25)]
    stats = one.stages[-1].stats["mix"]
    assert stats["sources"]["math"]["drawn"] == 10 and stats["sources"]["gsm8k"]["drawn"] == 5


def test_allocate_edge_cases() -> None:
    assert allocate(0, {"a": 1}, {"a": 5}) == {"a": 0}
    assert allocate(7, {"a": 1, "b": 1, "c": 1}, {"a": 9, "b": 9, "c": 9}) == {
        "a": 3,
        "b": 2,
        "c": 2,
    }
    assert allocate(100, {"a": 1, "b": 1}, {"a": 3, "b": 4}) == {"a": 3, "b": 4}
    assert allocate(5, {"a": 1, "b": 0}, {"a": 0, "b": 9}) == {"a": 0, "b": 0}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "give per_source"),
        ({"per_source": 3, "total": 4}, "give it alone"),
        ({"weights": {"a": -1}}, "weights >= 0"),
        ({"weights": {"a": 0}}, "at least one above 0"),
        ({"total": -2}, "count >= 0"),
        ({"per_source": {"a": 1.5}}, "counts >= 0"),
        ({"total": 3, "bins": (0.5,)}, "name it"),
        ({"total": 3, "stratify": "pass_rate", "bins": (0.5, 0.2)}, "increasing"),
        ({"total": 3, "strata": "even"}, "proportional"),
    ],
)
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Mix(**options)
