r"""LESS's scores from gradient features: the Adam update direction of a training example,
and its influence on target tasks summed over checkpoints.

For a training example, LESS uses the direction Adam would move the parameters for that
example alone, from the checkpoint's optimizer moments ``m`` and ``v`` (no bias
correction)::

    m' = b1 m + (1 - b1) g     v' = b2 v + (1 - b2) g^2     update = m' / (sqrt(v') + eps)

written in LESS's code as ``m' / sqrt(v' + eps)``; that is what `adam_direction` computes
(``eps`` 1e-8, so the two differ only where ``v'`` is near 0). Target examples use their
plain gradient. Then, with features L2-normalised per row::

    score(x) = max over subtasks s of
               sum over checkpoints c of lr_c * mean over targets t in s of
               cos(train_c(x), target_c(t))

(the max over subtasks after summing over checkpoints, as LESS's ``matching.py`` does).

>>> import torch
>>> g = torch.tensor([[1.0, -2.0]])
>>> adam_direction(g, torch.zeros(2), torch.zeros(2))
tensor([[ 3.1623, -3.1623]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from curate.errors import ConfigError


def adam_direction(
    grads: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> Any:
    """Each row of ``grads`` ``(n, d)`` turned into Adam's update direction from the
    moments ``exp_avg`` and ``exp_avg_sq`` ``(d,)``: ``m' / sqrt(v' + eps)`` with
    ``m' = beta1 m + (1 - beta1) g`` and ``v' = beta2 v + (1 - beta2) g²`` (LESS's
    formula; no bias correction)."""
    import torch

    if exp_avg.shape != grads.shape[1:] or exp_avg_sq.shape != grads.shape[1:]:
        raise ConfigError(
            f"adam_direction: moments of shape {tuple(exp_avg.shape)} and "
            f"{tuple(exp_avg_sq.shape)} for gradients of shape {tuple(grads.shape)}; expected "
            "one moment per gradient dimension (the same model and adapters)"
        )
    m = beta1 * exp_avg.to(grads) + (1 - beta1) * grads
    v = beta2 * exp_avg_sq.to(grads) + (1 - beta2) * grads.square()
    out: Any = m / torch.sqrt(v + eps)
    return out


def normalize_rows(x: Any) -> Any:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    import torch

    return torch.nn.functional.normalize(x.float(), dim=1)


def influence(
    train: Sequence[Any],
    targets: Sequence[Mapping[str, Any]],
    learning_rates: Sequence[float],
) -> tuple[Any, list[str]]:
    """LESS's score of each training row.

    ``train[c]`` is the ``(n, k)`` features of the training rows at checkpoint ``c``;
    ``targets[c]`` maps each subtask's name to its ``(m, k)`` target features at that
    checkpoint; ``learning_rates[c]`` weighs the checkpoint (LESS: the mean learning rate of
    the epoch that ended there). Returns the scores ``(n,)`` and, per row, the subtask that
    gave its score (the max).
    """
    import torch

    if not (len(train) == len(targets) == len(learning_rates)) or not train:
        raise ConfigError(
            f"influence: {len(train)} training feature sets, {len(targets)} target sets and "
            f"{len(learning_rates)} learning rates; expected one of each per checkpoint"
        )
    names = list(targets[0])
    if not names or any(list(t) != names for t in targets):
        raise ConfigError(
            "influence: expected the same non-empty subtasks at every checkpoint, got "
            f"{[list(t) for t in targets]}"
        )
    total = torch.zeros(train[0].size(0), len(names), dtype=torch.float64)
    for feats, subtasks, lr in zip(train, targets, learning_rates, strict=True):
        rows = normalize_rows(feats)
        for j, name in enumerate(names):
            target = normalize_rows(subtasks[name])
            target = target[target.norm(dim=1) > 0]  # no gradient (nothing scored): left out
            if not len(target):
                raise ConfigError(
                    f"influence: subtask {name!r} has no target example with a gradient (each "
                    "prompt fills the length limit?)"
                )
            mean_target = target.mean(dim=0)
            total[:, j] += lr * (rows @ mean_target).double()
    best, which = total.max(dim=1)
    return best, [names[i] for i in which.tolist()]
