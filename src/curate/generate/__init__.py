"""Inference backends behind one `Generator` protocol (see `curate.generate.base`).

Only `curate.generate.base` is imported here; each backend module imports its engine
(vllm, httpx, transformers) itself, when it is used.
"""

from curate.generate.base import (
    Completion,
    FinishReason,
    Generator,
    Message,
    Prompt,
    Request,
    Sampling,
    as_messages,
    derive_seed,
)

__all__ = [
    "Completion",
    "FinishReason",
    "Generator",
    "Message",
    "Prompt",
    "Request",
    "Sampling",
    "as_messages",
    "derive_seed",
]
