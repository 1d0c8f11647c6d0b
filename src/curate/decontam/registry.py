"""The benchmark registry: the evaluation sets bundled with curate, and the user's own.

A `Benchmark` is a name, a version (a hash of its content: change one character of one
problem and the version changes, so a decontamination stage re-runs), and its items:
one row per wording of an item, with ``id``, ``problem`` and ``answer``. Bundled
benchmarks live in ``curate/decontam/data/`` (origins and licenses in its README.md).

>>> "math500" in benchmarks() and "aime24" in benchmarks()
True
>>> b = load_benchmark("amc23")
>>> b.name, b.n_items, len(b.version)
('amc23', 40, 32)
>>> b.items.columns
['id', 'problem', 'answer']

Register your own from any file `curate.read` accepts (columns found by name or mapped):

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "mytest.jsonl"
>>> _ = p.write_text('{"question": "What is 2+3?", "answer": "5"}\\n')
>>> register_benchmark("mytest", p, problem="question").n_items
1
>>> "mytest" in benchmarks()
True
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import ConfigError, InputError
from curate.io import Source, read

_SCHEMA = {"id": pl.String, "problem": pl.String, "answer": pl.String}
_USER: dict[str, Source] = {}


@dataclass(frozen=True, eq=False)
class Benchmark:
    """An evaluation set: ``items`` has one row per wording (``id``, ``problem``, ``answer``)."""

    name: str
    version: str
    items: pl.DataFrame = field(repr=False)
    fields: str = "problem; answer"
    title: str = ""
    path: Path | None = None

    @property
    def n_items(self) -> int:
        """Distinct item ids (an item bundled in two wordings counts once)."""
        return int(self.items["id"].n_unique())


def _data() -> Path:
    return Path(str(resources.files("curate.decontam") / "data"))


@functools.cache
def _catalog() -> dict[str, Any]:
    catalog: dict[str, Any] = json.loads((_data() / "catalog.json").read_text(encoding="utf-8"))
    return catalog


def bundled() -> list[str]:
    """Names of the benchmarks shipped with curate, in catalog order."""
    return list(_catalog())


def benchmarks() -> list[str]:
    """Every benchmark name `load_benchmark` knows: bundled, then registered ones."""
    return bundled() + sorted(_USER)


def catalog() -> pl.DataFrame:
    """One row per bundled benchmark: name, title, items, rows, bytes, fields, origin, license."""
    return pl.DataFrame(
        [
            {
                "name": name,
                "title": c["title"],
                "items": c["items"],
                "rows": c["rows"],
                "bytes": c["bytes"],
                "fields": c["fields"],
                "origin": "; ".join(
                    f"{s['repo']}@{s['commit'][:8]}:{s['path']}" for s in c["sources"]
                ),
                "license": "; ".join(sorted({s["license"] for s in c["sources"]})),
            }
            for name, c in _catalog().items()
        ]
    )


@functools.cache
def _load_bundled(name: str) -> Benchmark:
    entry = _catalog()[name]
    path = _data() / entry["file"]
    blob = path.read_bytes()
    version = hashlib.blake2b(blob, digest_size=16).hexdigest()
    items = pl.read_ndjson(blob, schema=_SCHEMA) if blob.strip() else pl.DataFrame(schema=_SCHEMA)
    return Benchmark(name, version, items, entry["fields"], entry["title"], path)


def _from_source(name: str, source: Source) -> Benchmark:
    try:
        frame = source.frame().select(list(_SCHEMA))
    except InputError as e:
        if "has no rows" not in str(e):
            raise
        frame = pl.DataFrame(schema=_SCHEMA)  # an empty benchmark matches nothing
    mapping = source.mapping
    fields = f"{mapping.get('problem', 'problem')}; {mapping.get('answer', 'answer')}"
    return Benchmark(name, source.fingerprint(), frame, fields, source.location, source.path)


def register_benchmark(
    name: str,
    path: str | Path,
    *,
    problem: str | None = None,
    answer: str | None = None,
    solution: str | None = None,
    **options: Any,
) -> Benchmark:
    """Register a benchmark file under ``name`` (any file `curate.read` accepts).

    Columns are mapped as in `curate.read` (unmapped ones are found by their usual
    names; a missing answer is taken from the solution's last ``\\boxed{}``). Item ids are
    the rows' canonical ids. Registration lasts for the process: a recipe file registers
    its benchmarks before it builds the recipe.
    """
    if name in _catalog():
        raise ConfigError(f"benchmark name {name!r} is bundled with curate; pick another name")
    source = read(path, source=name, problem=problem, answer=answer, solution=solution, **options)
    _USER[name] = source
    return _from_source(name, source)


def unregister_benchmark(name: str) -> None:
    """Forget a registered benchmark (bundled ones cannot be removed)."""
    _USER.pop(name, None)


def load_benchmark(name: str | Path) -> Benchmark:
    """A benchmark by bundled or registered name, or from a file path (read by `curate.read`).

    >>> load_benchmark("gsm8k").items.row(0)[0]
    'test-0'
    """
    key = str(name)
    if key in _catalog() and not isinstance(name, Path):
        return _load_bundled(key)
    if key in _USER and not isinstance(name, Path):
        return _from_source(key, _USER[key])
    path = Path(key)
    if path.exists():
        return _from_source(path.stem, read(path, source=_safe_name(path.stem)))
    raise ConfigError(
        f"unknown benchmark {key!r}: expected one of {benchmarks()}, 'all', a name given to "
        "curate.decontam.register_benchmark, or the path of a file curate.read accepts"
    )


def resolve(spec: str | Path | Iterable[str | Path]) -> list[Benchmark]:
    """The benchmarks a ``benchmarks=`` option names: ``"all"`` (every bundled one), one
    name or path, or a list of them (duplicates removed, order kept)."""
    names: list[str | Path] = [spec] if isinstance(spec, str | Path) else list(spec)
    out: dict[str, Benchmark] = {}
    for n in names:
        for b in [_load_bundled(x) for x in bundled()] if n == "all" else [load_benchmark(n)]:
            if b.name in out and out[b.name].version != b.version:
                raise ConfigError(f"two different benchmarks are named {b.name!r}; rename one")
            out.setdefault(b.name, b)
    return list(out.values())


def _safe_name(stem: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "benchmark"
