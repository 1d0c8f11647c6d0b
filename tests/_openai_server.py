"""A small real OpenAI-compatible HTTP server on 127.0.0.1, scripted by the prompt, for
testing `curate.generate.openai.OpenAIGenerator` without a model.

Directives in the prompt text (the last message's content, or the prompt string) choose what
the server does with each request; counters are per (prompt, seed), so with ``split_n``
each sample has its own script:

- ``#500x2``: the first 2 attempts get HTTP 500, then a normal answer (``#503x9``: always);
- ``#429x1``: the first attempt gets 429 with ``Retry-After: 1``;
- ``#400`` / ``#401``: an error with a JSON message (401 echoes the Authorization header, as
  some APIs echo the key they were given);
- ``#hang``: sleeps ``hang`` seconds before answering (longer than the client's timeout);
- ``#badjson``, ``#nochoices``, ``#empty`` (content ""), ``#null`` (content null),
  ``#reasoning`` (thinking in ``reasoning_content``), ``#reasoning2`` (in ``reasoning``),
  ``#length``, ``#finish=NAME``, ``#nofinish``, ``#fewer`` (one choice less than ``n``);
- ``#sleep=0.05``: sleeps before a normal answer (to observe concurrency and reordering).

A normal answer is ``echo:<prompt> seed=<seed> i=<choice index>``, with
``usage.completion_tokens`` the number of its words times ``n``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from _http import serve, stop


@dataclass
class Seen:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    start: float
    end: float = 0.0


@dataclass
class FakeOpenAI:
    """The server; use as a context manager, ``url`` is the ``base_url`` to give clients."""

    hang: float = 3.0
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _attempts: Counter[tuple[str, Any]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()
            self._attempts.clear()
            self.max_in_flight = 0

    def __enter__(self) -> FakeOpenAI:
        self._server = serve(self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self._server)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("content-length", 0)))
        body = json.loads(raw)
        seen = Seen(h.path, dict(h.headers.items()), body, time.monotonic())
        with self._lock:
            self.seen.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, headers, payload = self._reply(h.path, body, dict(h.headers.items()))
        finally:
            # Counted out before the reply is sent: once the client has the reply it may
            # send its next request, whose thread must not find this one still counted.
            with self._lock:
                self.in_flight -= 1
                seen.end = time.monotonic()
        try:
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("content-length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout)

    def _reply(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        chat = path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        with self._lock:
            self._attempts[prompt, body.get("seed")] += 1
            attempt = self._attempts[prompt, body.get("seed")]
        js = {"content-type": "application/json"}

        def error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
            err = {"error": {"message": message, "type": "test", "code": status}}
            return status, js, json.dumps(err).encode()

        if m := re.search(r"#(\d{3})x(\d+)", prompt):
            status, times = int(m[1]), int(m[2])
            if attempt <= times:
                extra = {"retry-after": "1"} if status == 429 else {}
                return status, {**js, **extra}, json.dumps({"error": {"message": "busy"}}).encode()
        if "#400" in prompt:
            return error(400, "bad request: " + "x" * 1000)
        if "#401" in prompt:
            return error(401, f"Incorrect API key provided: {headers.get('Authorization')}")
        if "#hang" in prompt:
            time.sleep(self.hang)
        if m := re.search(r"#sleep=([\d.]+)", prompt):
            time.sleep(float(m[1]))
        if "#badjson" in prompt:
            return 200, js, b'{"choices": [{"text": "unterminated'
        if "#nochoices" in prompt:
            return 200, js, json.dumps({"id": "x", "object": "chat.completion"}).encode()
        n = int(body.get("n", 1))
        choices = []
        for i in range(n - ("#fewer" in prompt)):
            text = f"echo:{prompt} seed={body.get('seed')} i={i}"
            if "#empty" in prompt:
                text = ""
            finish: str | None = "stop"
            if "#length" in prompt:
                finish = "length"
            if m := re.search(r"#finish=(\w+)", prompt):
                finish = m[1]
            if "#nofinish" in prompt:
                finish = None
            if chat:
                message: dict[str, Any] = {"role": "assistant", "content": text}
                if "#null" in prompt:
                    message["content"] = None
                if "#reasoning2" in prompt:
                    message["reasoning"] = "thought"
                elif "#reasoning" in prompt:
                    message["reasoning_content"] = "thought"
                choices.append({"index": i, "message": message, "finish_reason": finish})
            else:
                choices.append({"index": i, "text": text, "finish_reason": finish})
        choices.reverse()  # servers need not send choices in index order
        words = len(f"echo:{prompt} seed=0 i=0".split())
        usage = {"prompt_tokens": 5, "completion_tokens": words * n, "total_tokens": 5 + words * n}
        reply = {"id": "cmpl-1", "model": body["model"], "choices": choices, "usage": usage}
        return 200, js, json.dumps(reply).encode()
