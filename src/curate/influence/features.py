"""Features of (prompt, completion) examples from a causal LM: projected per-example gradients
(LESS) and mean-pooled hidden states (RDS+), in batches, cached by text.

An example is a user prompt and the assistant's completion, rendered with the model's chat
template; the loss (and so the gradient) is on the completion's tokens only, as in SFT.
Examples are batched longest first (little padding), in an order that depends only on
their texts, so the features are the same whatever order the rows come in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate._progress import progress_bar
from curate.embed import VectorCache, text_key
from curate.errors import ConfigError


@dataclass(frozen=True)
class Example:
    """A user prompt and the assistant's completion."""

    prompt: str
    completion: str

    @property
    def key(self) -> str:
        return text_key(json.dumps([self.prompt, self.completion]))


def tokenize(tokenizer: Any, example: Example, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat and labels (``-100`` on the prompt), cut to
    ``max_length`` tokens."""
    prompt = [{"role": "user", "content": example.prompt}]
    whole = [*prompt, {"role": "assistant", "content": example.completion}]
    head = _ids(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True))
    ids = _ids(tokenizer.apply_chat_template(whole, tokenize=True))
    if ids[: len(head)] != head:  # a template that renders the prompt differently alone
        tail = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
        ids = head + list(tail) + [tokenizer.eos_token_id]
    ids = ids[:max_length]
    labels = [-100] * min(len(head), len(ids)) + ids[len(head) :]
    return ids, labels


def _ids(out: Any) -> list[int]:
    """transformers 5 returns a BatchEncoding from ``apply_chat_template(tokenize=True)``."""
    ids = out["input_ids"] if hasattr(out, "keys") else out
    return [int(i) for i in ids]


def _batches(sizes: Sequence[int], keys: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indices grouped in batches, longest first (ties by key): little padding, and an
    order that depends only on the examples."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], keys[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(rows: list[tuple[list[int], list[int]]], pad_id: int, device: Any) -> tuple[Any, ...]:
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], mask[i, : len(x)], labels[i, : len(y)] = (
            torch.tensor(x), 1, torch.tensor(y),
        )  # fmt: skip
    return ids.to(device), mask.to(device), labels.to(device)


def features(
    examples: Sequence[Example],
    compute: Callable[[Any, Any, Any], Any],
    tokenizer: Any,
    *,
    cache: VectorCache | None = None,
    batch_size: int = 8,
    max_length: int = 1024,
    device: Any = None,
    progress: bool = False,
) -> np.ndarray:
    """``compute(input_ids, attention_mask, labels)`` -> ``(batch, k)`` features for each
    example, computed once per distinct example, taken from ``cache`` where there, stored
    there after each batch (a progress bar with ``progress``). Returns float32
    ``(len(examples), k)``."""
    keys = [e.key for e in examples]
    unique = dict(zip(keys, examples, strict=True))
    have = cache.lookup(list(unique)) if cache is not None else {}
    todo = [k for k in unique if k not in have]
    if todo:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        tokens = [tokenize(tokenizer, unique[k], max_length) for k in todo]
        bar = progress_bar(len(todo), "features", enabled=progress, unit="example")
        with bar:
            for batch in _batches([len(t[0]) for t in tokens], todo, batch_size):
                out = compute(*_pad([tokens[i] for i in batch], pad, device))
                vectors = out.detach().float().cpu().numpy()
                done = [todo[i] for i in batch]
                have.update(zip(done, vectors, strict=True))
                if cache is not None:
                    cache.store(done, vectors)
                bar.update(len(batch))
    if not keys:
        raise ConfigError("features: no examples")
    return np.stack([have[k] for k in keys]).astype(np.float32, copy=False)


def gradient_compute(
    model: Any, projection: Any, moments: tuple[Any, Any] | None = None
) -> Callable[[Any, Any, Any], Any]:
    """Per-example gradients of ``model``'s trainable linear layers, turned into Adam's
    update direction when ``moments`` (exp_avg, exp_avg_sq) are given, projected, and
    L2-normalised. An example with no scored token (its prompt fills ``max_length``) has no
    gradient: its feature is all zeros, whatever the moments (Adam's direction of a zero
    gradient would be the optimizer's momentum, the same for every such example)."""
    from curate.influence.gradients import per_example_gradients
    from curate.influence.scores import adam_direction, normalize_rows

    def compute(ids: Any, mask: Any, labels: Any) -> Any:
        grads, _ = per_example_gradients(model, ids, mask, labels)
        scored = (labels[:, 1:] != -100).any(dim=1).to(grads.device)
        if moments is not None:
            grads = adam_direction(grads, *moments)
        return normalize_rows(projection(grads)) * scored.unsqueeze(1)

    return compute


def hidden_compute(model: Any) -> Callable[[Any, Any, Any], Any]:
    """RDS+'s representation (Ivison et al. 2025): the last hidden state, mean-pooled with
    weights growing with the position (SGPT's weighted mean: token ``i`` of ``n`` weighs
    ``i / (1 + ... + n)``), over the example's tokens (prompt and completion), L2-normalised.
    """
    import torch

    from curate.influence.scores import normalize_rows

    def compute(ids: Any, mask: Any, labels: Any) -> Any:
        with torch.no_grad():
            out = model(
                input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False
            )
        hidden = out.hidden_states[-1].float()
        position = (mask.cumsum(dim=1) * mask).float()  # 1..n over the tokens, 0 on padding
        weights = (position / position.sum(dim=1, keepdim=True).clamp(min=1)).unsqueeze(-1)
        return normalize_rows((hidden * weights).sum(dim=1))

    return compute
