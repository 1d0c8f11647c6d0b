r"""`OpenAIGenerator`: any OpenAI-compatible server (``vllm serve``, SGLang, hosted APIs).

Requests go out concurrently over one ``httpx.AsyncClient`` per `~OpenAIGenerator.generate`
call (an async client belongs to the event loop that made it, and each call runs its own
loop), at most ``concurrency`` at a time, spaced to ``requests_per_minute`` when set.

What the server's reply becomes:

- ``finish_reason`` ``"stop"`` (and the other names servers use for a normal end:
  ``"eos"``, ``"end_turn"``, ``"stop_sequence"``) is ``stop``; ``"length"`` (and
  ``"max_tokens"``) is ``length``. Anything else (``"content_filter"``, ``"abort"``,
  ``"tool_calls"``) or no finish_reason at all is ``error``, with the text kept and the
  reason said: we cannot tell that such a text ended on its own, so it must never count as
  correct.
- Chat text is ``message.content``; when the server returns the thinking separately
  (``reasoning_content`` as DeepSeek's API does, ``reasoning`` as vLLM's reasoning parsers
  do) the text is ``<think>{reasoning}</think>{content}``, the shape offline engines give
  (a parser also puts thinking the model never closed in ``reasoning``: it gets a
  ``</think>`` here, and no answer, as it should). An empty or null content is a valid,
  empty completion (it simply has no answer).
- With ``split_n`` (the default) each of a request's ``n`` samples is its own HTTP request
  with seed ``derive_seed(request.seed, i)``, so every sample has its exact token count from
  ``usage``; without it one HTTP request asks for ``n`` choices and ``n_tokens`` is known
  only when ``n == 1``.
- A chat prompt on the ``completions`` endpoint is recorded as an error for that request
  (no HTTP request is made): flattening a conversation needs the model's chat template,
  which only the ``chat`` endpoint applies. A string prompt on the ``chat`` endpoint is one
  user message.

Failures never crash a batch (see `curate.generate.base`): connection errors, timeouts and
HTTP 408, 409, 429 and 5xx are retried up to ``max_retries`` times with exponential backoff
and full jitter, honouring ``Retry-After``; other HTTP errors (400, 401, 404: retrying
cannot help) and a reply that is not JSON or has no ``choices`` are not retried. What still
fails becomes ``Completion.failed(reason)``, the reason naming the URL, the HTTP status and
the server's message (truncated). A server that cannot be reached at all gives every
request that error, naming the URL: check ``base_url``.

The API key is read from the environment variable named by ``api_key_env`` at each call; it
is never a field, never in `~OpenAIGenerator.describe`, and is masked in error messages.

>>> gen = OpenAIGenerator("Qwen/Qwen3-8B", label="qwen3-8b", extra_body={"top_k": 20})
>>> gen.model, gen.describe()["extra_body"]
('qwen3-8b', {'top_k': 20})
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from curate.errors import ConfigError, MissingExtraError
from curate.generate.base import (
    Completion,
    FinishReason,
    Request,
    Sampling,
    as_messages,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

_STOP = frozenset({"stop", "eos", "eos_token", "end_turn", "stop_sequence"})
_LENGTH = frozenset({"length", "max_tokens"})
_RETRY_STATUS = frozenset({408, 409, 429})
# set by curate from Sampling and Request: letting extra_body change them would make the
# sampling columns of the responses table lie, and "stream" would change the reply's shape
_RESERVED = frozenset(
    ["model", "messages", "prompt", "n", "seed", "stream", "temperature", "top_p", "max_tokens"]
) | {"stop"}
_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class OpenAIGenerator:
    """An OpenAI-compatible server as a `~curate.generate.Generator` (see the module doc).

    ``served_model`` is the model name the server knows (sent in each request body);
    ``label`` the name responses are stored under (default: ``served_model``).
    ``api_key_env`` names the environment variable holding the key (unset or empty: no
    ``Authorization`` header, as a local ``vllm serve`` needs). ``timeout`` bounds one HTTP
    request in seconds; ``backoff`` is the first retry's longest wait, doubling each retry up
    to ``max_backoff``, which also caps a server's ``Retry-After``. ``extra_body`` adds
    server-specific fields to each request body (vLLM's ``top_k``, ``min_p``,
    ``repetition_penalty``), a mapping or pairs; it may not set what `Sampling` and
    `Request` decide.

    >>> OpenAIGenerator("m", concurrency=0)
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: OpenAIGenerator(concurrency=0): expected an integer >= 1
    >>> OpenAIGenerator("m", extra_body={"temperature": 1.0})
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: OpenAIGenerator(extra_body): 'temperature' is set by curate from Sampling or Request; set it there instead
    """  # noqa: E501

    served_model: str
    label: str | None = None
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    endpoint: Literal["chat", "completions"] = "chat"
    concurrency: int = 64
    max_retries: int = 6
    timeout: float = 600.0
    requests_per_minute: float | None = None
    extra_body: Mapping[str, Any] | tuple[tuple[str, Any], ...] = ()
    split_n: bool = True
    backoff: float = 1.0
    max_backoff: float = 60.0
    _pacer: _Pacer | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not (isinstance(self.served_model, str) and self.served_model.strip()):
            raise ConfigError(f"{name}(served_model={self.served_model!r}): expected a model name")
        if not re.match(r"https?://[^/]", str(self.base_url)):
            raise ConfigError(
                f"{name}(base_url={_safe_url(str(self.base_url))!r}): expected an http(s) URL "
                "such as 'http://127.0.0.1:8000/v1'"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.endpoint not in ("chat", "completions"):
            raise ConfigError(
                f"{name}(endpoint={self.endpoint!r}): expected 'chat' or 'completions'"
            )
        for key, low in (("concurrency", 1), ("max_retries", 0)):
            value = getattr(self, key)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ConfigError(f"{name}({key}={value!r}): expected an integer >= {low}")
        if not self.timeout > 0:
            raise ConfigError(f"{name}(timeout={self.timeout!r}): expected seconds > 0")
        if not (self.backoff >= 0 and self.max_backoff >= 0):
            raise ConfigError(
                f"{name}(backoff={self.backoff!r}, max_backoff={self.max_backoff!r}): "
                "expected seconds >= 0"
            )
        rpm = self.requests_per_minute
        if rpm is not None and not rpm > 0:
            raise ConfigError(f"{name}(requests_per_minute={rpm!r}): expected > 0 or None")
        object.__setattr__(self, "extra_body", _extra_pairs(self.extra_body))
        # shared by every generate call (and thread), so the spacing holds across chunks
        object.__setattr__(self, "_pacer", _Pacer(60.0 / rpm) if rpm else None)

    @property
    def model(self) -> str:
        """The label responses are stored under."""
        return self.label or self.served_model

    def describe(self) -> dict[str, Any]:
        """What decides the outputs: the server and model, the endpoint, the extra body and
        how samples are seeded (``split_n``). Not the key, nor concurrency, retries or
        timeouts, which change how fast, not what.

        >>> OpenAIGenerator("m", base_url="http://user:pw@host:8000/v1").describe()["base_url"]
        'http://host:8000/v1'
        """
        return {
            "backend": "openai",
            "class": type(self).__name__,
            "served_model": self.served_model,
            "base_url": _safe_url(self.base_url),
            "endpoint": self.endpoint,
            "extra_body": dict(self.extra_pairs),
            "split_n": self.split_n,
        }

    @property
    def extra_pairs(self) -> tuple[tuple[str, Any], ...]:
        """``extra_body`` as sorted ``(key, value)`` pairs (what `__post_init__` made of it)."""
        return self.extra_body  # type: ignore[return-value]

    def close(self) -> None:
        """Nothing to release: each `generate` call opens and closes its own client."""

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        """One list of ``request.n`` completions per request, in request order.

        Runs an event loop of its own; called where a loop is already running (a notebook),
        it runs that loop in a worker thread. From async code, use `agenerate`.

        >>> OpenAIGenerator("m").generate([], Sampling())
        []
        """
        requests = list(requests)
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(requests, sampling))
        with ThreadPoolExecutor(1, thread_name_prefix="curate-openai") as pool:
            return pool.submit(asyncio.run, self.agenerate(requests, sampling)).result()

    async def agenerate(
        self, requests: Sequence[Request], sampling: Sampling
    ) -> list[list[Completion]]:
        """`generate` for async code: the same results, on the running event loop.

        >>> asyncio.run(OpenAIGenerator("m").agenerate([], Sampling()))
        []
        """
        requests = list(requests)
        if not requests:
            return []
        try:
            import httpx
        except ImportError as e:
            raise MissingExtraError("httpx", "openai") from e
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        async with httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(self.timeout), limits=limits
        ) as client:
            call = _Call(self, client, asyncio.Semaphore(self.concurrency), key or None)
            return list(await asyncio.gather(*(call.request(r, sampling) for r in requests)))


@dataclass
class _Failure:
    """Why one HTTP attempt failed, and whether another attempt may succeed."""

    reason: str
    retry: bool
    retry_after: float | None = None


@dataclass
class _Call:
    """One `OpenAIGenerator.agenerate` call: the client, the concurrency bound, the key."""

    gen: OpenAIGenerator
    client: httpx.AsyncClient
    slots: asyncio.Semaphore
    key: str | None

    @property
    def url(self) -> str:
        path = "/chat/completions" if self.gen.endpoint == "chat" else "/completions"
        return self.gen.base_url + path

    def body(
        self, request: Request, sampling: Sampling, n: int, seed: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.gen.served_model}
        if self.gen.endpoint == "chat":
            body["messages"] = as_messages(request.prompt)
        else:
            body["prompt"] = request.prompt
        body |= {
            "n": n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if seed is not None:
            body["seed"] = seed
        return body | dict(self.gen.extra_pairs)

    async def request(self, request: Request, sampling: Sampling) -> list[Completion]:
        if self.gen.endpoint == "completions" and not isinstance(request.prompt, str):
            return [
                Completion.failed(
                    "a chat prompt (a list of messages) cannot go to the completions endpoint: "
                    "use OpenAIGenerator(endpoint='chat'), or give a string prompt"
                )
            ] * request.n
        if not self.gen.split_n:
            return await self.post(self.body(request, sampling, request.n, request.seed), request.n)
        seeds = [request.sample_seed(i) for i in range(request.n)]
        samples = await asyncio.gather(
            *(self.post(self.body(request, sampling, 1, s), 1) for s in seeds)
        )
        return [c for sample in samples for c in sample]

    async def post(self, body: dict[str, Any], n: int) -> list[Completion]:
        """POST one body, retrying what may pass on a later attempt; ``n`` completions."""
        gen, attempts = self.gen, self.gen.max_retries + 1
        attempt = 0
        while True:
            async with self.slots:
                if gen._pacer is not None:
                    await gen._pacer.wait()
                outcome = await self.attempt(body, n)
            if isinstance(outcome, list):
                return outcome
            attempt += 1
            if not outcome.retry or attempt == attempts:
                break
            wait = random.uniform(0, min(gen.max_backoff, gen.backoff * 2 ** (attempt - 1)))
            if outcome.retry_after is not None:
                wait = min(gen.max_backoff, max(wait, outcome.retry_after))
            log.debug("%s; retry %d/%d in %.2f s", self.mask(outcome.reason), attempt,
                      gen.max_retries, wait)  # fmt: skip
            await asyncio.sleep(wait)
        reason = outcome.reason
        if outcome.retry:
            reason += f" (gave up after {attempts} attempt{'s' * (attempts > 1)})"
        return [Completion.failed(self.mask(reason))] * n

    async def attempt(self, body: dict[str, Any], n: int) -> list[Completion] | _Failure:
        import httpx

        url, timeout = _safe_url(self.url), self.gen.timeout
        try:
            # httpx's timeout is per read; this bounds the whole request
            async with asyncio.timeout(timeout):
                response = await self.client.post(self.url, json=body)
        except (TimeoutError, httpx.TimeoutException) as e:
            kind = type(e).__name__ if isinstance(e, httpx.TimeoutException) else "timeout"
            return _Failure(f"no reply from {url} within {timeout:g} s ({kind})", retry=True)
        except httpx.UnsupportedProtocol as e:
            return _Failure(f"cannot send to {url}: {e}", retry=False)
        except httpx.ConnectError as e:
            return _Failure(
                f"cannot connect to {url} ({e or type(e).__name__}): is the server running "
                "there? check base_url",
                retry=True,
            )
        except httpx.TransportError as e:
            return _Failure(f"connection to {url} failed: {type(e).__name__}: {e}", retry=True)
        except httpx.HTTPError as e:
            return _Failure(f"request to {url} failed: {type(e).__name__}: {e}", retry=False)
        if response.is_success:
            return _parse(response, self.gen.endpoint, n, url)
        status = response.status_code
        message = _error_message(response)
        retry = status in _RETRY_STATUS or status >= 500
        if status == 429 and "insufficient_quota" in response.text:
            retry = False  # out of credit: waiting does not help
        hint = ""
        if status == 401 and self.gen.api_key_env and not self.key:
            hint = f" (the key is read from ${self.gen.api_key_env}, which is not set)"
        return _Failure(
            f"HTTP {status} from {url}: {message}{hint}",
            retry=retry,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )

    def mask(self, text: str) -> str:
        """The text with the API key (and anything shaped like one) masked."""
        if self.key:
            text = text.replace(self.key, "***")
        return re.sub(r"\bsk-[A-Za-z0-9_\-]{6,}", "sk-***", text)


def _parse(response: httpx.Response, endpoint: str, n: int, url: str) -> list[Completion]:
    """The ``n`` completions of a successful reply; what is missing or malformed becomes an
    explained error completion."""
    try:
        data = response.json()
    except ValueError:
        snippet = _clip(response.text) or "an empty body"
        return [Completion.failed(f"reply from {url} is not valid JSON: {snippet}")] * n
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        got = f"keys {sorted(data)[:8]}" if isinstance(data, dict) else type(data).__name__
        if isinstance(data, dict) and data.get("error"):
            got += f", error {_clip(json.dumps(data['error']))}"
        return [Completion.failed(f"reply from {url} has no 'choices' list (got {got})")] * n
    if all(isinstance(c, dict) and isinstance(c.get("index"), int) for c in choices):
        choices = sorted(choices, key=lambda c: c["index"])
    usage = data.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    n_tokens = tokens if n == 1 and isinstance(tokens, int) else None
    out = [_choice(c, endpoint, n_tokens) for c in choices[:n]]
    missing = f"reply from {url} has {len(choices)} choices, expected {n}"
    return out + [Completion.failed(missing)] * (n - len(out))


def _choice(choice: Any, endpoint: str, n_tokens: int | None) -> Completion:
    if not isinstance(choice, dict):
        return Completion.failed(f"a choice is not a JSON object: {_clip(json.dumps(choice))}")
    if endpoint == "chat":
        message = choice.get("message")
        if not isinstance(message, dict):
            return Completion.failed(f"a choice has no 'message': {_clip(json.dumps(choice))}")
        text = _content(message.get("content"))
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            text = f"<think>{reasoning}</think>{text}"
    else:
        raw = choice.get("text")
        if not isinstance(raw, str):
            return Completion.failed(f"a choice has no 'text': {_clip(json.dumps(choice))}")
        text = raw
    finish = choice.get("finish_reason")
    reason: FinishReason = "stop" if finish in _STOP else "length" if finish in _LENGTH else "error"
    if reason != "error":
        return Completion(text, reason, n_tokens)
    why = f"finish_reason {finish!r}" if finish is not None else "no finish_reason"
    return Completion(
        text, "error", n_tokens, f"the server gave {why}, expected 'stop' or 'length'"
    )


def _content(content: Any) -> str:
    """Chat content as text: a string, null (empty) or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _error_message(response: httpx.Response) -> str:
    """The server's own words from an error reply (OpenAI, vLLM and FastAPI shapes)."""
    try:
        data = response.json()
    except ValueError:
        return _clip(response.text) or response.reason_phrase or "no message"
    if isinstance(data, dict):
        err = data.get("error")
        for value in (err.get("message") if isinstance(err, dict) else err, data.get("message"),
                      data.get("detail")):  # fmt: skip
            if value:
                return _clip(value if isinstance(value, str) else json.dumps(value))
    return _clip(json.dumps(data))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number or an HTTP date.

    >>> _retry_after("2"), _retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), _retry_after("x")
    (2.0, 0.0, None)
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _clip(text: str, limit: int = _MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_url(url: str) -> str:
    """The URL without credentials (``user:password@``)."""
    return re.sub(r"^(https?://)[^/@]*@", r"\1", url)


def _extra_pairs(extra: Any) -> tuple[tuple[str, Any], ...]:
    pairs = sorted(dict(extra).items()) if extra else []
    for key, value in pairs:
        if not isinstance(key, str):
            raise ConfigError(f"OpenAIGenerator(extra_body): key {key!r} is not a string")
        if key in _RESERVED:
            raise ConfigError(
                f"OpenAIGenerator(extra_body): {key!r} is set by curate from Sampling or "
                "Request; set it there instead"
            )
        try:
            json.dumps(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"OpenAIGenerator(extra_body): {key}={value!r} is not JSON-serializable ({e})"
            ) from e
    return tuple(pairs)


class _Pacer:
    """Client-side rate limit: request starts at least ``interval`` seconds apart, shared by
    every thread and event loop using the generator."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._next = 0.0

    async def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)

    def __getstate__(self) -> dict[str, float]:  # a lock does not pickle (Ray ships stages)
        return {"interval": self.interval}

    def __setstate__(self, state: dict[str, float]) -> None:
        self.interval = state["interval"]
        self._lock = threading.Lock()
        self._next = 0.0
