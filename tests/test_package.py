"""Package-level promises: a light import, the public names, generated schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import curate
from curate.schema import json_schema

HEAVY = ("torch", "transformers", "vllm", "faiss", "sentence_transformers", "ray")


def test_import_curate_is_light() -> None:
    code = (
        "import sys, curate; curate.Recipe; curate.read; curate.ExactDedup; "
        "curate.RequireGradable; curate.verify; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    bare = subprocess.run(
        [sys.executable, "-c", "import sys, curate; print('polars' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert bare.stdout.strip() == "False"


def test_public_names_resolve() -> None:
    for name in curate.__all__:
        assert getattr(curate, name) is not None


def test_checked_in_json_schemas_match_the_code() -> None:
    root = Path(__file__).resolve().parents[1] / "schemas"
    for name in ("problems", "rejects", "responses"):
        on_disk = json.loads((root / f"{name}.schema.json").read_text())
        assert on_disk == json_schema(name), f"run `make schemas` to regenerate {name}"
