"""Timing helpers of the benchmark scripts: wall time per phase (`Laps`), and the bare
vLLM engine on a list of chat prompts (`vllm_direct`), the baseline of the overhead
benchmarks."""

from __future__ import annotations

import time
from typing import Any


class Laps:
    """``laps.lap("train")`` adds the time since the previous lap to "train"; ``laps.times``
    keeps the sums in the order the phases first came."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self._start
        self._start = now


def toy_generator(engine: str, model: str) -> Any:
    """The generator the overhead benchmarks time: vLLM (a fifth of the GPU) or transformers."""
    if engine == "vllm":
        from curate.generate.vllm import VLLMGenerator

        return VLLMGenerator(model, label="toy", gpu_memory_utilization=0.2)
    from curate.generate.hf import HFGenerator

    return HFGenerator(model, label="toy")


def vllm_direct(generator: Any, messages: list[Any], n: int, sampling: Any) -> tuple[float, int]:
    """The engine alone: one ``LLM.generate`` over every chat-templated prompt, ``n`` samples
    each (seed ``i`` for prompt ``i``); returns the seconds and the tokens generated."""
    from vllm import SamplingParams

    llm = generator.engine()
    tok = llm.get_tokenizer()
    prompts = [
        tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages
    ]
    params = [
        SamplingParams(
            n=n,
            seed=i,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
        )
        for i in range(len(prompts))
    ]
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    return seconds, sum(len(o.token_ids) for out in outputs for o in out.outputs)
