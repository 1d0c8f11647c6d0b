r"""`Perplexity`: DeepDistill's perplexity filter, through any local causal LM.

DeepDistill (the AM-DeepSeek-Distilled-40M paper) dropped samples whose query+answer
perplexity under a reference model was above 20. Here a row's text is its ``text_columns``
(default the problem, then the solution when the table has one), joined by a blank line, or
with ``chat=True`` rendered as a user message (the first column) and the assistant's reply
(the others) by the model's chat template. Its perplexity is
``exp(mean negative log-likelihood)`` of every token after the first, under a transformers
causal LM in a local folder (the paper's reference model is not named; any will do: the
threshold means something only for the model it was chosen on).

The model is loaded once per process and kept between batches (``keeps_state``: on Ray the
batches run on long-lived actors, each asking for ``gpus`` GPUs). torch and transformers
are imported only when a batch runs, never by ``import curate``.

>>> Perplexity("no/such/folder")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
curate.errors.ConfigError: Perplexity(model='no/such/folder'): no such folder; expected ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import polars as pl

from curate._torch import load_causal_lm, torch_threads
from curate.errors import ConfigError
from curate.stage import Filter, StageContext

PERPLEXITY = "perplexity"
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
_RUNTIME = ("device", "batch_size", "threads", "gpus")  # where it runs, not what it computes


@dataclass(frozen=True)
class _Loaded:
    key: tuple[str, str, str]
    model: Any
    tokenizer: Any
    device: Any


_LOADED: list[_Loaded] = []  # the one model this process holds (a stage's actor keeps it)


@dataclass(frozen=True)
class Perplexity(Filter):
    r"""Reject rows whose text's perplexity under ``model`` is above ``max_perplexity``
    (default 20, DeepDistill's value) with reason ``high_perplexity``; every row gets
    ``perplexity`` (null for a text of fewer than two tokens, which is kept), so the
    threshold can be changed later in SQL without recomputing (``max_perplexity=None``:
    score only).

    ``model``: a local folder with a transformers causal LM. ``text_columns``: what is
    scored, in order (columns after the first may be missing from the table, and nulls are
    skipped). ``chat``: render the first column as the user's message and the rest as the
    reply, with the model's chat template. ``max_tokens``: texts are cut to their first
    that many tokens. ``batch_size`` texts go through the model at once (memory: batch size
    × tokens × vocabulary logits). ``device``: ``auto`` (a GPU when there is one), ``cpu``,
    ``cuda``...; ``dtype``: ``auto`` is float32 on CPU and the checkpoint's on a GPU.
    ``gpus``: GPUs each Ray actor asks for. ``threads``: torch's CPU threads while scoring.
    The weights' digest is in the fingerprint (a retrained model scores again); where it runs
    (device, batch size, threads, GPUs) is not.
    """

    version: ClassVar[str] = "1"
    keeps_state: ClassVar[bool] = True  # the loaded model, between batches
    batch_rows: ClassVar[int] = 1024

    model: str
    text_columns: tuple[str, ...] = ("problem", "solution")
    max_perplexity: float | None = 20.0
    chat: bool = False
    max_tokens: int = 2048
    batch_size: int = 4
    device: str = "auto"
    dtype: Dtype = "auto"
    gpus: float = 0.0
    threads: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", str(self.model))
        object.__setattr__(self, "text_columns", tuple(self.text_columns))
        where = f"Perplexity(model={self.model!r})"
        if not Path(self.model).is_dir():
            raise ConfigError(
                f"{where}: no such folder; expected a local folder holding a transformers "
                "causal LM (config.json and weights)"
            )
        if not self.text_columns:
            raise ConfigError(f"{where}: text_columns=() names no column to score")
        if self.max_perplexity is not None and not self.max_perplexity > 0:
            raise ConfigError(f"Perplexity(max_perplexity={self.max_perplexity}): expected > 0")
        for name, least in (("max_tokens", 2), ("batch_size", 1)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= least):
                raise ConfigError(f"Perplexity({name}={value!r}): expected an integer >= {least}")
        if self.dtype not in get_args(Dtype):
            raise ConfigError(
                f"Perplexity(dtype={self.dtype!r}): expected one of {', '.join(get_args(Dtype))}"
            )
        if not self.gpus >= 0:
            raise ConfigError(f"Perplexity(gpus={self.gpus}): expected >= 0")
        # what the Ray engine reads to give each actor its GPUs (a class default otherwise)
        object.__setattr__(self, "num_gpus", float(self.gpus))

    def config(self) -> dict[str, Any]:
        return {k: v for k, v in super().config().items() if k not in _RUNTIME}

    def describe(self) -> dict[str, Any]:
        from curate.generate.hf import weights_fingerprint

        out = super().describe()
        out["weights"] = weights_fingerprint(self.model)
        return out

    def reads(self) -> tuple[str, ...]:
        return self.text_columns

    def optional_reads(self) -> tuple[str, ...]:
        return self.text_columns[1:]

    def adds(self) -> tuple[str, ...]:
        return (PERPLEXITY,)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        present = [c for c in self.text_columns if c in batch.columns]
        parts = [batch[c].cast(pl.String).to_list() for c in present]
        rows = [[p[i] for p in parts] for i in range(batch.height)]
        values = self.perplexities(rows)
        scored = batch.lazy().with_columns(pl.Series(PERPLEXITY, values, pl.Float64))
        if self.max_perplexity is None:
            return scored
        detail = pl.format(
            "perplexity {} > {}", pl.col(PERPLEXITY).round(2), pl.lit(self.max_perplexity)
        )
        return self.mark(
            scored, pl.col(PERPLEXITY) > self.max_perplexity, "high_perplexity", detail
        )

    def perplexities(self, rows: list[list[str | None]]) -> list[float | None]:
        """The perplexity of each row's texts (its columns' values, in order), or None for a
        text of fewer than two tokens."""
        loaded = self._load()
        ids = [self._encode(loaded.tokenizer, parts) for parts in rows]
        out: list[float | None] = [None] * len(ids)
        order = sorted((i for i in range(len(ids)) if len(ids[i]) >= 2), key=lambda i: len(ids[i]))
        with torch_threads(self.threads):
            for lo in range(0, len(order), self.batch_size):
                chunk = order[lo : lo + self.batch_size]
                for i, value in zip(chunk, _score(loaded, [ids[i] for i in chunk]), strict=True):
                    out[i] = value
        return out

    def _encode(self, tokenizer: Any, parts: list[str | None]) -> list[int]:
        texts = [p for p in parts if p is not None and p.strip()]
        if not texts:
            return []
        if self.chat and getattr(tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": texts[0]}]
            if len(texts) > 1:
                messages.append({"role": "assistant", "content": "\n\n".join(texts[1:])})
            rendered = tokenizer.apply_chat_template(messages, tokenize=False)
            ids = tokenizer.encode(rendered, add_special_tokens=False)
        else:
            ids = tokenizer.encode("\n\n".join(texts), add_special_tokens=True)
        return list(ids[: self.max_tokens])

    def _load(self) -> _Loaded:
        key = (self.model, self.device, self.dtype)
        if _LOADED and _LOADED[0].key == key:
            return _LOADED[0]
        _LOADED.clear()  # one model per process: drop the last stage's before loading
        model, tokenizer, device = load_causal_lm(
            self.model, device=self.device, dtype=self.dtype, who="Perplexity"
        )
        loaded = _Loaded(key, model, tokenizer, device)
        _LOADED.append(loaded)
        return loaded


def _score(loaded: _Loaded, batch: list[list[int]]) -> list[float]:
    """Perplexity of each token sequence (two tokens or more), right-padded in one batch."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, ids in enumerate(batch):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        mask[r, : len(ids)] = 1
    with torch.inference_mode():
        logits = loaded.model(
            input_ids=input_ids.to(loaded.device), attention_mask=mask.to(loaded.device)
        ).logits
        out = []
        for r, ids in enumerate(batch):
            n = len(ids)
            nll = torch.nn.functional.cross_entropy(
                logits[r, : n - 1].float(), input_ids[r, 1:n].to(loaded.device)
            )
            out.append(math.exp(float(nll)))
    return out
