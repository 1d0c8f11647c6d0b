"""`curate.InfluenceSelect` in real runs: random, embedding and influence scores on the toy
model, the budget, per-source selection, rejects, and re-selection from cached features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

pytest.importorskip("trl")

import curate
from curate.errors import ConfigError
from curate.toy import toy_problems

LORA = {"r": 4, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Additions and subtractions as two sources; the target: other additions."""
    d = tmp_path_factory.mktemp("influence-pool")
    plus = toy_problems(24, seed=1, levels=[1, 2], ops=["+"])
    minus = toy_problems(24, seed=2, levels=[1, 2], ops=["-"])
    for r in minus[:3]:
        r["solution"] = ""  # no solution: cannot be scored
    target = toy_problems(6, seed=3, levels=[1, 2], ops=["+"])
    out = {}
    for name, rows in (("plus", plus), ("minus", minus), ("target", target)):
        out[name] = d / f"{name}.jsonl"
        out[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _run(pool: dict[str, Path], stage: curate.Stage, out: Path) -> curate.Run:
    sources = [curate.read(pool["plus"], source="plus"), curate.read(pool["minus"], source="minus")]
    return curate.Recipe("influence", sources, [stage]).run(out, progress=False)


def _selected(run: curate.Run) -> pl.DataFrame:
    return run.table("problems").collect()


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="budget"):
        curate.InfluenceSelect(model="m", target="t", budget=0)
    with pytest.raises(ConfigError, match="method"):
        curate.InfluenceSelect(model="m", target="t", budget=3, method="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="warmup"):
        curate.InfluenceSelect(model="m", target="t", budget=3, warmup=0)
    with pytest.raises(ConfigError, match="embedding"):
        curate.InfluenceSelect(model="m", target="t", embedding="bert")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dim"):
        curate.InfluenceSelect(model="m", target="t", dim=0)


def test_random_selection_by_count_share_and_source(
    pool: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    stage = curate.InfluenceSelect(
        model=str(toy_dir), target=str(pool["target"]), budget=10, method="random"
    )
    run = _run(pool, stage, tmp_path / "a")
    kept = _selected(run)
    assert kept.height == 10 and kept["influence"].is_not_null().all()
    rejects = run.table("rejects").collect()
    assert rejects.height == 48 - 10
    reasons = dict(rejects["reason"].value_counts().rows())
    assert reasons == {"not_selected": 35, "no_solution": 3}
    worst_kept = kept["influence"].min()
    dropped = rejects.filter(pl.col("reason") == "not_selected")
    assert dropped["detail"].str.starts_with("random ").all()
    assert dropped["detail"].str.contains(r"\(rank \d+ of 45\)").all()
    assert all(float(d.split()[1]) <= worst_kept for d in dropped["detail"])
    # the same again: the same rows; a share per source: 20% of each source's scored rows
    assert _selected(_run(pool, stage, tmp_path / "b"))["id"].to_list() == kept["id"].to_list()
    share = curate.InfluenceSelect(
        model=str(toy_dir), target=str(pool["target"]), budget=0.2, method="random",
        per_source=True,
    )  # fmt: skip
    by_source = dict(_selected(_run(pool, share, tmp_path / "c"))["source"].value_counts().rows())
    assert by_source == {"plus": 4, "minus": 4}  # LESS's floor: 0.2 x 24 and 0.2 x 21 scored


def test_targets_bundled_and_as_subtasks(
    pool: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    stage = curate.InfluenceSelect(
        model=str(toy_dir), target={"adds": str(pool["target"]), "grade": "gsm8k"}, budget=12,
        method="embedding",
    )  # fmt: skip
    run = _run(pool, stage, tmp_path / "run")
    assert run.stages[-1].stats["subtasks"] == ["adds", "grade"]
    assert set(_selected(run)["influence_subtask"]) <= {"adds", "grade"}
    with pytest.raises(ConfigError, match="no such model folder"):
        _run(pool, curate.InfluenceSelect(model=str(tmp_path / "none"), target=str(pool["target"]),
                                          method="embedding"), tmp_path / "nomodel")  # fmt: skip
    twice = [str(pool["target"]), str(pool["target"])]
    with pytest.raises(ConfigError, match="give a mapping"):
        _run(pool, curate.InfluenceSelect(model=str(toy_dir), target=twice, method="random"),
             tmp_path / "twice")  # fmt: skip
    with pytest.raises(ConfigError, match="unknown benchmark"):
        _run(pool, curate.InfluenceSelect(model=str(toy_dir), target="nope", budget=3,
                                          method="random"), tmp_path / "bad")  # fmt: skip


def test_embedding_baselines_prefer_the_target_skill(
    pool: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    for embedding in ("hidden", "minilm"):
        if embedding == "minilm":
            pytest.importorskip("sentence_transformers")
        stage = curate.InfluenceSelect(
            model=str(toy_dir), target=str(pool["target"]), budget=12, method="embedding",
            embedding=embedding,  # type: ignore[arg-type]
        )  # fmt: skip
        kept = _selected(_run(pool, stage, tmp_path / embedding))
        assert kept.height == 12
        plus = int((kept["source"] == "plus").sum())
        assert plus >= 9, (embedding, plus)  # mostly additions, like the target


def test_influence_with_a_warmup_and_reselection_from_the_cache(
    pool: dict[str, Path], toy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = curate.InfluenceSelect(
        model=str(toy_dir), target=str(pool["target"]), budget=12, lora=LORA, warmup=0.4,
        dim=128, batch_size=8, max_length=96,
    )  # fmt: skip
    out = tmp_path / "run"
    run = _run(pool, stage, out)
    kept = _selected(run)
    assert kept.height == 12 and kept["influence"].is_finite().all()
    stats = run.stages[-1].stats
    assert stats["warmup_rows"] == 18  # 40% of the 45 rows with a solution
    assert [c["step"] for c in stats["checkpoints"]] == [2, 4, 6, 8]  # 4 epochs of 2 steps
    assert kept["influence_subtask"].unique().to_list() == ["target"]
    # deterministic: another run from nothing gives the same scores, to the bit
    other = _selected(_run(pool, stage, tmp_path / "other"))
    assert other.equals(kept)
    # the warm-up's checkpoints given instead: the same checkpoints, the same scores (the
    # features come from the run's cache)
    warmup = next((out / "cache" / "influence").glob("warmup-*")) / "train"
    given = curate.InfluenceSelect(
        model=str(toy_dir), target=str(pool["target"]), budget=12, checkpoints=str(warmup),
        dim=128, batch_size=8, max_length=96,
    )  # fmt: skip
    assert _selected(_run(pool, given, out))["influence"].equals(kept["influence"])
    # a new budget: the features come from the run's cache; no model is loaded
    import curate.influence.checkpoints as checkpoints

    def no_model(*_: Any, **__: Any) -> Any:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(checkpoints, "load_adapter", no_model)
    again = curate.InfluenceSelect(
        model=str(toy_dir), target=str(pool["target"]), budget=6, lora=LORA, warmup=0.4,
        dim=128, batch_size=8, max_length=96,
    )  # fmt: skip
    rerun = _run(pool, again, out)
    assert rerun.stages[-1].stats["scores_cached"] == 45
    fewer = _selected(rerun)
    best = kept.sort("influence", descending=True)["id"][:6]
    assert sorted(fewer["id"]) == sorted(best)
