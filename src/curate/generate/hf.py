"""`HFGenerator`: the Hugging Face transformers backend (CPU or GPU, small models, tests).

The only module that imports transformers for inference. Requests are flattened into one row
per sample, sorted by prompt length (less padding) and generated in left-padded batches of
``batch_size`` rows; results come back in request order.

Seeds are per sample, as in vLLM: sample ``j`` of a request with seed ``s`` draws its tokens
from its own random stream, seeded with ``derive_seed(s, j)``, by the Gumbel-max trick (add
Gumbel noise to the tempered, top-p-filtered logits and take the argmax: a draw from the
same distribution as sampling). So a sample does not depend on which other requests share
its batch, nor on ``batch_size``, up to floating-point differences of padding. A request
without a seed gets a fresh random one.

>>> g = HFGenerator("my/model", label="toy")
>>> g.model, g.describe()["backend"]
('toy', 'hf')
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from curate._torch import load_causal_lm, torch_threads
from curate.errors import ConfigError
from curate.generate.base import Completion, Prompt, Request, Sampling, as_messages

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth")
_SMALL = ("config.json", "generation_config.json", "special_tokens_map.json", "added_tokens.json")
_SMALL_PREFIX = ("tokenizer", "chat_template", "vocab", "merges")
_CHUNK = 1 << 20


def _file_digest(path: Path) -> str:
    """Whole small files; weight files by size and eight 1 MiB samples (hashing gigabytes
    would cost seconds, and retrained weights differ everywhere)."""
    h = hashlib.blake2b(digest_size=16)
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        if path.suffix not in _WEIGHTS or size <= 8 * _CHUNK:
            h.update(f.read())
        else:
            for k in range(8):
                f.seek((size - _CHUNK) * k // 7)
                h.update(f.read(_CHUNK))
    return h.hexdigest()


def weights_fingerprint(model_path: str | Path) -> str | None:
    """A digest of a local model directory's config, tokenizer and weights; None for a hub
    name (the revision then identifies the weights).

    >>> weights_fingerprint("no/such-model") is None
    True
    """
    root = Path(model_path)
    if not root.is_dir():
        return None
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(root.rglob("*")):
        name = p.name
        wanted = name in _SMALL or name.startswith(_SMALL_PREFIX) or p.suffix in _WEIGHTS
        if p.is_file() and wanted and not any(s.startswith(".") for s in p.relative_to(root).parts):
            h.update(f"{p.relative_to(root).as_posix()}={_file_digest(p)};".encode())
    return h.hexdigest()


def model_identity(model_path: str, revision: str | None = None) -> dict[str, Any]:
    """What names a model's weights in a generator's `describe`: a local directory by its
    `weights_fingerprint` alone, not its path (the same weights copied elsewhere, or found
    in another user's cache, are the same model: they keep the responses cache and draw the
    same samples), else the hub name and revision.

    >>> model_identity("org/model", "main")
    {'model_path': 'org/model', 'revision': 'main', 'weights': None}
    """
    fingerprint = weights_fingerprint(model_path)
    if fingerprint is not None:
        return {"model_path": None, "revision": None, "weights": fingerprint}
    return {"model_path": model_path, "revision": revision, "weights": None}


def encode_prompt(
    tokenizer: Any,
    prompt: Prompt,
    *,
    chat_template: bool,
    model: str,
    template: str | None = None,
    template_hint: str = "",
) -> list[int]:
    """The token ids of ``prompt``, rendered as both local backends render it (HF and vLLM).

    A string is encoded with the tokenizer's special tokens. Messages go through the chat
    template (``template``, else the tokenizer's own) with the generation prompt, or, with
    ``chat_template=False``, are joined by blank lines as plain text. Without a template,
    a `ConfigError` names ``model`` and the ways out (``template_hint``: another one).
    """
    if isinstance(prompt, str):
        return list(tokenizer.encode(prompt, add_special_tokens=True))
    messages = as_messages(prompt)
    if not chat_template:
        return list(tokenizer.encode("\n\n".join(m["content"] for m in messages)))
    if template is None and getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError(
            f"{model!r} has no chat template: pass chat_template=False (to join the messages "
            f"as plain text){template_hint} or string prompts"
        )
    text = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=True
    )
    if not isinstance(text, str):  # tokenizers that only render to ids (mistral)
        return [int(t) for t in text]
    # the template writes any BOS itself: no second one
    return list(tokenizer.encode(text, add_special_tokens=False))


@dataclass(frozen=True)
class _Engine:
    model: Any
    tokenizer: Any
    device: Any
    eos: frozenset[int]
    pad: int
    context: int | None


@dataclass(frozen=True)
class HFGenerator:
    """Generate with a transformers causal LM.

    ``model_path`` is a local directory or a hub name (with ``revision``); ``label`` is the
    name responses are stored under (default: ``model_path``). ``dtype="auto"`` is float32
    on CPU and the checkpoint's dtype on GPU. Chat prompts go through the tokenizer's chat
    template (``chat_template=False`` joins the messages' contents instead, for base
    models); string prompts are used as they are. ``threads`` sets torch's CPU threads while
    generating (None: torch's default, one per core): on a machine shared with other busy
    processes (``pytest -n 2`` on two cores), one thread is many times faster than two,
    whose parallel regions keep waiting for each other.

    >>> HFGenerator("m", batch_size=0)
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: HFGenerator(batch_size=0): expected a positive integer
    """

    model_path: str
    label: str | None = None
    revision: str | None = None
    device: str = "cpu"
    dtype: Dtype = "auto"
    batch_size: int = 16
    chat_template: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads >= 1):
            raise ConfigError(
                f"HFGenerator(threads={self.threads!r}): expected None or a positive integer"
            )
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(
                f"HFGenerator(batch_size={self.batch_size}): expected a positive integer"
            )
        if self.dtype not in get_args(Dtype):
            raise ConfigError(
                f"HFGenerator(dtype={self.dtype!r}): expected one of "
                + ", ".join(map(repr, get_args(Dtype)))
            )
        object.__setattr__(self, "model_path", str(self.model_path))

    @property
    def model(self) -> str:
        return self.label or self.model_path

    def describe(self) -> dict[str, Any]:
        """What decides the outputs besides sampling: the weights (`model_identity`), the
        dtype and the prompt rendering; not the device or batch size."""
        if "_identity" not in self.__dict__:
            object.__setattr__(self, "_identity", model_identity(self.model_path, self.revision))
        return {
            "backend": "hf",
            "class": type(self).__name__,
            **self.__dict__["_identity"],
            "dtype": self.dtype,
            "chat_template": self.chat_template,
        }

    def close(self) -> None:
        """Drop the model and tokenizer (the next `generate` loads them again)."""
        self.__dict__.pop("_loaded", None)

    def _engine(self) -> _Engine:
        engine = self.__dict__.get("_loaded")
        if engine is None:
            engine = self._load()
            object.__setattr__(self, "_loaded", engine)
        return engine

    def _load(self) -> _Engine:
        model, tokenizer, device = load_causal_lm(
            self.model_path,
            device=self.device,
            dtype=self.dtype,
            revision=self.revision,
            who="HFGenerator",
        )
        eos_ids = model.generation_config.eos_token_id
        eos_set = set(eos_ids if isinstance(eos_ids, list) else [eos_ids]) - {None}
        if tokenizer.eos_token_id is not None:
            eos_set.add(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        pad = pad if pad is not None else min(eos_set) if eos_set else 0
        context = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        return _Engine(model, tokenizer, device, frozenset(eos_set), pad, context)

    def _encode(self, engine: _Engine, prompt: Prompt) -> list[int]:
        ids = encode_prompt(
            engine.tokenizer, prompt, chat_template=self.chat_template, model=self.model_path
        )
        if engine.context is not None and len(ids) >= engine.context:
            raise ValueError(
                f"prompt of {len(ids)} tokens does not fit the model's context of "
                f"{engine.context} tokens; shorten it or use a model with a longer context"
            )
        return ids

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        """One list of ``request.n`` completions per request, in request order; a request
        that fails (a prompt longer than the context) gets failed completions.

        Example (a real model directory, such as `curate.toy.toy_model`'s)::

            g = HFGenerator(str(toy_model()))
            g.generate([Request("What is 2 + 3?", n=2, seed=0)], Sampling(max_tokens=40))
        """
        if not requests:
            return []
        engine = self._engine()
        out: list[list[Completion | None]] = [[None] * r.n for r in requests]
        prompts: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            try:
                prompts[i] = self._encode(engine, r.prompt)
            except ConfigError:
                raise
            except Exception as e:  # one bad prompt must not lose the batch
                out[i] = [Completion.failed(f"{type(e).__name__}: {e}")] * r.n
        rows = []
        for i in prompts:
            for j in range(requests[i].n):
                s = requests[i].sample_seed(j)
                rows.append((i, j, random.getrandbits(31) if s is None else s))
        rows.sort(key=lambda row: (len(prompts[row[0]]), row[0], row[1]))
        with torch_threads(self.threads):
            for k in range(0, len(rows), self.batch_size):
                batch = rows[k : k + self.batch_size]
                try:
                    done = _run(engine, [(prompts[i], s) for i, _, s in batch], sampling)
                except Exception:  # find the request at fault: one request at a time
                    done = []
                    for i, _, s in batch:
                        try:
                            done += _run(engine, [(prompts[i], s)], sampling)
                        except Exception as e:
                            done.append(Completion.failed(f"{type(e).__name__}: {e}"))
                for (i, j, _), completion in zip(batch, done, strict=True):
                    out[i][j] = completion
        return [
            [c if c is not None else Completion.failed("not generated") for c in o] for o in out
        ]


def _run(
    engine: _Engine, rows: list[tuple[list[int], int]], sampling: Sampling
) -> list[Completion]:
    """Generate one completion per (prompt ids, seed) row, in one left-padded batch."""
    import torch
    from transformers import (
        GenerationConfig,
        LogitsProcessorList,
        StoppingCriteriaList,
        StopStringCriteria,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), engine.pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (ids, _) in enumerate(rows):
        input_ids[r, width - len(ids) :] = torch.tensor(ids)
        mask[r, width - len(ids) :] = 1
    max_new = sampling.max_tokens
    if engine.context is not None:
        max_new = min(max_new, engine.context - width)
    processors = LogitsProcessorList()
    if sampling.temperature > 0:
        if sampling.temperature != 1:
            processors.append(TemperatureLogitsWarper(sampling.temperature))
        if sampling.top_p < 1:
            processors.append(TopPLogitsWarper(sampling.top_p))
        processors.append(_Gumbel([s for _, s in rows], engine.device))
    stopping = StoppingCriteriaList()
    if sampling.stop:
        stopping.append(StopStringCriteria(engine.tokenizer, list(sampling.stop)))
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=max_new,
        do_sample=False,  # greedy over Gumbel-perturbed logits: sampling with per-row seeds
        num_beams=1,
        temperature=1.0,
        top_p=1.0,
        top_k=50,
        repetition_penalty=1.0,
        eos_token_id=sorted(engine.eos),
        pad_token_id=engine.pad,
    )
    with torch.inference_mode():
        seqs = engine.model.generate(
            input_ids=input_ids.to(engine.device),
            attention_mask=mask.to(engine.device),
            generation_config=config,
            logits_processor=processors,
            stopping_criteria=stopping,
        )
    return [_completion(engine, g, sampling, max_new) for g in seqs[:, width:].tolist()]


def _completion(engine: _Engine, gen: list[int], sampling: Sampling, max_new: int) -> Completion:
    """Text, finish reason and token count of one generated row (padding after its end)."""
    eos_at = next((k for k, t in enumerate(gen) if t in engine.eos), None)
    end = len(gen) if eos_at is None else eos_at
    if eos_at is None:  # a row that ended on a stop string is padded to the batch's length
        while end and gen[end - 1] == engine.pad:
            end -= 1
    text = engine.tokenizer.decode(gen[:end], skip_special_tokens=True)
    cuts = [c for c in (text.find(s) for s in sampling.stop) if c >= 0]
    if cuts:  # ended on a stop string, which the text leaves out (as vLLM does)
        return Completion(text[: min(cuts)], "stop", end)
    if eos_at is not None:
        return Completion(text, "stop", eos_at + 1)
    return Completion(text, "length" if end >= max_new else "stop", end)


class _Gumbel:
    """Adds Gumbel noise from one seeded generator per row to the (processed) logits, so
    that the argmax is a sample; each row draws once per step whatever the others do."""

    def __init__(self, seeds: list[int], device: Any) -> None:
        import torch

        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        noise = torch.empty_like(scores, dtype=torch.float32)
        for r, g in enumerate(self.generators):
            noise[r].exponential_(generator=g)
        # -log(Exp(1)) is Gumbel(0, 1); the clamp keeps -inf logits at -inf
        return scores.float() - torch.log(noise.clamp_min(1e-30))
