"""torch's intra-op thread count, set for a block of work and put back after it.

torch is imported only when a count is set, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block (None: left as they are).

    >>> with torch_threads(None):
    ...     pass
    """
    if threads is None:
        yield
        return
    torch = importlib.import_module("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
