"""Package-level promises: a light import, the public names, generated schemas."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import curate
from curate.schema import json_schema

ROOT = Path(__file__).resolve().parents[1]
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


def test_no_submodule_shadows_a_public_name() -> None:
    """``import curate.x`` must not replace a public ``curate.x`` (a module named verify
    once replaced the function ``curate.verify`` as soon as anything imported it)."""
    modules = {m.name for m in pkgutil.iter_modules(curate.__path__)}
    subpackages = {"reward", "train"}  # public as the sub-packages themselves
    assert not (modules - subpackages) & set(curate.__all__)
    for name in subpackages:
        assert getattr(curate, name).__name__ == f"curate.{name}"


def test_readme_python_snippet_runs_verbatim(tmp_path: Path) -> None:
    """The README's "In Python" block, as written, in one interpreter (from a folder where
    its relative paths resolve)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## In Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "data").symlink_to(ROOT / "data")
    checks = (
        "\nassert curate.verify('34', '<think>x</think> The largest $n$ is 34.').pred == '34'"
        "\nprint(curate.verify(r'\\frac{1}{2}', '0.5').status)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code + checks],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("equivalent")
