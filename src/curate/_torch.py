"""torch's intra-op thread count, set for a block of work and put back after it.

torch is imported only when a count is set, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any


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


def load_causal_lm(
    path: str,
    *,
    device: str = "cpu",
    dtype: str = "auto",
    revision: str | None = None,
    who: str = "curate",
) -> tuple[Any, Any, Any]:
    """A transformers causal LM and its tokenizer from ``path``, on ``device`` (``"auto"``: a
    GPU if there is one), in eval mode: ``(model, tokenizer, torch.device)``.

    ``dtype="auto"`` keeps the checkpoint's dtype on a GPU and float32 on the CPU (half
    precision on a CPU is slow and not what GPUs compute). ``who`` names the caller in the
    error when the folder holds no model.
    """
    from curate.errors import ConfigError, MissingExtraError

    try:
        torch = importlib.import_module("torch")
        transformers = importlib.import_module("transformers")
    except ImportError as e:
        raise MissingExtraError("transformers", "hf") from e
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen: Any = "auto" if dtype == "auto" else getattr(torch, dtype)
    if dtype == "auto" and device == "cpu":
        chosen = torch.float32
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, revision=revision)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, revision=revision, dtype=chosen
        )
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{who} could not load {path!r}: {e}; expected a local directory with config.json, "
            "weights and a tokenizer, or a hub model name (with network access or a filled "
            "cache)"
        ) from e
    model.to(device).eval()
    return model, tokenizer, torch.device(device)
