"""Engines: who runs a stage's per-row batches. One option selects one; recipes do not
change and the results are byte-identical.

- ``"local"`` (`LocalEngine`, the default): batches in turn in this process; the stage
  spreads a batch over ``workers`` processes where its work allows.
- ``"ray"`` (`RayEngine`, extra ``curate[ray]``): batches as Ray Data tasks over a
  local or remote Ray cluster (``address``), each retried on another worker if its
  worker dies.

The global steps and the merge run where the run does; see `curate.engines.execute`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from curate.engines.execute import Engine, StageOutput, execute_stage, split, write_split
from curate.engines.local import LocalEngine
from curate.errors import ConfigError

if TYPE_CHECKING:
    from curate.engines.ray import RayEngine

EngineName = Literal["local", "ray"]

__all__ = [
    "Engine",
    "EngineName",
    "LocalEngine",
    "RayEngine",
    "StageOutput",
    "execute_stage",
    "make_engine",
    "split",
    "write_split",
]


def make_engine(engine: EngineName | Engine = "local", *, address: str | None = None) -> Engine:
    """The engine named ``engine`` (an engine object is returned as it is).

    >>> make_engine("local").name
    'local'
    """
    if not isinstance(engine, str):
        return engine
    if engine == "local":
        if address is not None:
            raise ConfigError("address= is for engine='ray'")
        return LocalEngine()
    if engine == "ray":
        from curate.engines.ray import RayEngine

        return RayEngine(address=address)
    raise ConfigError(f"engine={engine!r}: expected 'local' or 'ray'")


def __getattr__(name: str) -> object:
    if name == "RayEngine":
        from curate.engines.ray import RayEngine

        return RayEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
