r"""Reward functions for verl, on curate's one grading path.

verl loads a custom reward function from a file path (``custom_reward_function.path`` and
``.name``, imported with ``importlib.util.spec_from_file_location``), so this file works
both as ``curate.reward.verl`` and loaded on its own by path: absolute imports only, and
nothing but functions defined here.

- `compute_score` is verl's per-response form, for its ``naive`` reward manager and its
  reward loop (which calls it from worker threads: the time limit of each check still
  holds, see `curate.verify`);
- `compute_score_batch` is the batched form, for ``reward_model.reward_manager=batch``:
  one call grades the whole batch, the symbolic checks in parallel;
- `verl_reward_path` and `verl_overrides` say what to pass to verl.

Any ``data_source`` works (it is not looked at: every row is graded the same way), and
``ground_truth`` is a bare answer (or a whole solution, or a list of accepted answers).
The reward is 1.0 for an equivalent final answer, 0.0 otherwise, and ``unverifiable``
(0.0 by default) when the check could not be made; options come through verl's
``custom_reward_function.reward_kwargs``.

Shell, from the repository root of a verl checkout::

    python -m verl.trainer.main_ppo data.train_files=out/verl/train.parquet ... \
        custom_reward_function.path="$(python -m curate.reward.verl)" \
        custom_reward_function.name=compute_score

>>> compute_score("math", r"Adding up, the total is $\boxed{12}$.", "12")
1.0
>>> compute_score_batch(["gsm8k", "aime24"], ["#### 7", "so 8"], ["7", "9"])
[1.0, 0.0]
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from curate.reward.funcs import REWARD_OPTIONS, UNVERIFIABLE
from curate.verification import DEFAULT_TIMEOUT, Verdict, verify_many


def _golds(ground_truth: Any) -> list[str | None]:
    """The accepted answers of one row: a string, a list of them, or verl's struct."""
    if isinstance(ground_truth, Mapping):
        ground_truth = ground_truth.get("ground_truth")
    if ground_truth is None or isinstance(ground_truth, str):
        return [ground_truth]
    if isinstance(ground_truth, (bytes, int, float)):
        return [ground_truth.decode() if isinstance(ground_truth, bytes) else str(ground_truth)]
    golds = [None if g is None else str(g) for g in ground_truth]  # a list or numpy array
    return golds or [None]


def _score(verdicts: Sequence[Verdict], unverifiable: float, details: bool) -> Any:
    best = next((v for v in verdicts if v.equivalent), None)
    if best is not None:
        score = 1.0
    elif all(v.status in UNVERIFIABLE for v in verdicts):
        score = float(unverifiable)
    else:
        score = 0.0
    if not details:
        return score
    shown = best or verdicts[0]
    return {"score": score, "acc": best is not None, "pred": shown.pred or ""}


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    unverifiable: float = 0.0,
    details: bool = False,
    **kwargs: Any,
) -> list[Any]:
    r"""The scores of a batch of responses, graded in one `curate.verify_many` call.

    For verl's ``batch`` reward manager (``reward_model.reward_manager=batch``), which calls
    it with keyword lists. Returns one float per response, or with ``details=True`` one
    ``{"score", "acc", "pred"}`` dict (verl logs the extra keys). ``timeout`` bounds each
    symbolic check; ``unverifiable`` is the score when no check could be made (no gold
    answer, a timeout). ``data_sources`` and ``extra_infos`` are not needed.

    >>> compute_score_batch(["math"], [r"\boxed{0.5}"], [r"\frac12"], details=True)
    [{'score': 1.0, 'acc': True, 'pred': '0.5'}]
    """
    if len(solution_strs) != len(ground_truths):
        raise ValueError(
            f"compute_score_batch: {len(solution_strs)} responses for {len(ground_truths)} "
            "ground truths; expected one ground truth per response"
        )
    rows = [_golds(g) for g in ground_truths]
    pairs = [(g, s or "") for s, golds in zip(solution_strs, rows, strict=True) for g in golds]
    verdicts = verify_many(pairs, options=REWARD_OPTIONS, timeout=timeout)
    scores, at = [], 0
    for golds in rows:
        scores.append(_score(verdicts[at : at + len(golds)], unverifiable, details))
        at += len(golds)
    return scores


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    unverifiable: float = 0.0,
    details: bool = False,
    **kwargs: Any,
) -> Any:
    r"""The score of one response: 1.0 when its final answer equals ``ground_truth``.

    verl's ``compute_score(data_source, solution_str, ground_truth, extra_info)``, for any
    ``data_source``; the options are those of `compute_score_batch` (set them with
    ``+custom_reward_function.reward_kwargs.timeout=10``, say).

    >>> compute_score("dapo", "<think>3 + 4 is 7</think>The answer is 7.", "7")
    1.0
    >>> compute_score("math", "<think>3 + 4 is", "7")  # cut off while thinking: no answer
    0.0
    """
    return compute_score_batch(
        [data_source],
        [solution_str],
        [ground_truth],
        [extra_info],
        timeout=timeout,
        unverifiable=unverifiable,
        details=details,
    )[0]


def verl_reward_path() -> str:
    """The path of this file, for verl's ``custom_reward_function.path``.

    >>> verl_reward_path().endswith("verl.py")
    True
    """
    return str(Path(__file__).resolve())


def verl_overrides(*, batch: bool = False, where: Literal["here", "at_run"] = "here") -> str:
    """The Hydra overrides that make verl grade with curate, for a shell command line.

    ``batch`` uses `compute_score_batch` through verl's ``batch`` reward manager (the
    legacy reward managers; verl's reward loop calls `compute_score`). ``where="here"``
    names this file's path on this machine; ``where="at_run"`` asks the shell for it when
    the command runs (``$(python -m curate.reward.verl)``), for another machine.

    >>> print(verl_overrides(where="at_run").replace('" ', '"\\n'))
    custom_reward_function.path="$(python -m curate.reward.verl)"
    custom_reward_function.name=compute_score
    """
    if where == "here":
        path = shlex.quote(f"custom_reward_function.path={verl_reward_path()}")
    elif where == "at_run":
        path = 'custom_reward_function.path="$(python -m curate.reward.verl)"'
    else:
        raise ValueError(f"verl_overrides(where={where!r}): expected 'here' or 'at_run'")
    name = "compute_score_batch" if batch else "compute_score"
    manager = " reward_model.reward_manager=batch" if batch else ""
    return f"{path} custom_reward_function.name={name}{manager}"


if __name__ == "__main__":  # python -m curate.reward.verl: the path to give verl
    print(verl_reward_path())
