r"""Rewards on curate's one grading path (`curate.verify`), for TRL and for verl.

TRL (``GRPOTrainer(reward_funcs=[...])``; see `curate.reward.funcs`):

- `accuracy_reward` / `accuracy_reward_async`: 1.0 when a completion's final answer equals
  the gold answer (column ``answer``, ``ground_truth``, ``solution`` or ``reward_model``);
- `make_accuracy_reward`: the same, configured (rules, time limit, None for "could not
  check", column, name, async);
- `think_format_reward` / `make_think_format_reward`: DeepSeek-R1's ``<think>`` format.

verl (``custom_reward_function``; see `curate.reward.verl`): `compute_score`,
`compute_score_batch`, `verl_reward_path`, `verl_overrides`.

Names are imported on first use: ``python -m curate.reward.verl`` (which prints the path
to give verl) and ``import curate`` stay light.

>>> from curate.reward import accuracy_reward, think_format_reward
>>> completions = [[{"role": "assistant", "content": "<think>1+1</think>$\\boxed{2}$"}]]
>>> accuracy_reward(completions, answer=["2"]), think_format_reward(completions)
([1.0], [1.0])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from curate._lazy import attach

_EXPORTS: dict[str, str] = {
    "REWARD_OPTIONS": "curate.reward.funcs",
    "GOLD_COLUMNS": "curate.reward.funcs",
    "AccuracyReward": "curate.reward.funcs",
    "AsyncAccuracyReward": "curate.reward.funcs",
    "ThinkFormatReward": "curate.reward.funcs",
    "accuracy_reward": "curate.reward.funcs",
    "accuracy_reward_async": "curate.reward.funcs",
    "make_accuracy_reward": "curate.reward.funcs",
    "think_format_reward": "curate.reward.funcs",
    "make_think_format_reward": "curate.reward.funcs",
    "compute_score": "curate.reward.verl",
    "compute_score_batch": "curate.reward.verl",
    "verl_reward_path": "curate.reward.verl",
    "verl_overrides": "curate.reward.verl",
}

__all__ = [
    "GOLD_COLUMNS",
    "REWARD_OPTIONS",
    "AccuracyReward",
    "AsyncAccuracyReward",
    "ThinkFormatReward",
    "accuracy_reward",
    "accuracy_reward_async",
    "compute_score",
    "compute_score_batch",
    "make_accuracy_reward",
    "make_think_format_reward",
    "think_format_reward",
    "verl_overrides",
    "verl_reward_path",
]

if TYPE_CHECKING:
    from curate.reward.funcs import (
        GOLD_COLUMNS,
        REWARD_OPTIONS,
        AccuracyReward,
        AsyncAccuracyReward,
        ThinkFormatReward,
        accuracy_reward,
        accuracy_reward_async,
        make_accuracy_reward,
        make_think_format_reward,
        think_format_reward,
    )
    from curate.reward.verl import (
        compute_score,
        compute_score_batch,
        verl_overrides,
        verl_reward_path,
    )

__getattr__, __dir__ = attach("curate.reward", _EXPORTS, globals(), __all__)
