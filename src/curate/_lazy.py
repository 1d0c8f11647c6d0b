"""Lazy public names for a package's ``__init__``: each is imported from its module on
first use, so importing the package pulls in nothing heavy."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any


def attach(
    package: str,
    names: Mapping[str, str],
    namespace: MutableMapping[str, Any],
    public: Sequence[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``: ``names`` maps each
    public name to the module that defines it (or, for a sub-package such as
    ``curate.train``, to itself); a name is stored in ``namespace`` (the package's globals)
    once imported.

    >>> space: dict[str, Any] = {}
    >>> getattr_, dir_ = attach("pkg", {"sqrt": "math"}, space, ["sqrt"])
    >>> getattr_("sqrt")(4.0), "sqrt" in space, dir_()
    (2.0, True, ['sqrt'])
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(module)
        value = imported if module == f"{package}.{name}" else getattr(imported, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__
