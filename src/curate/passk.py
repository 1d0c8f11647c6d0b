r"""The numbers of an evaluation: pass@k, maj@k and pass@1 with its error, per benchmark.

Every number is a mean over problems of a per-problem value computed from that problem's
``n`` samples (in sample order):

- **pass@k**: the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``
  with ``c`` correct samples (`curate.grade.pass_at_k`); pass@1 is the share of correct
  samples. Its standard error is the standard deviation of the per-problem pass@1 over
  problems divided by the square root of their number (0 for one problem), and the 95%
  interval is ``±1.96`` standard errors.
- **maj@k**: whether the majority vote of the **first** ``k`` samples is right. Samples are
  independent draws, so the first ``k`` give an unbiased estimate of majority voting with
  ``k`` samples (with more variance than averaging over every subset, which has no cheap
  exact form once ties are broken). Votes are grouped thus: every correct sample votes for
  the gold answer (they all state it, in whatever form: ``1/2`` and ``0.5`` are one vote);
  a wrong one votes for its extracted answer after `normalize_answer` (so two wrong
  answers that are equal but written apart split their votes); a sample without an
  answer (none found, cut at ``max_tokens``, failed) does not vote. The group with most
  votes wins; a tie goes to the group whose first vote came first (a choice independent of
  correctness, so unbiased). No votes at all: wrong.

>>> pass_at_k(4, 1, 2)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
0.5
>>> majority_correct(["1", "2", "2", "1"], [True, False, False, True])  # 2-2: the first wins
True
>>> majority_correct(["7", "5", "5", None], [False, True, True, False], k=2)  # 1-1: "7" first
False
>>> powers_of_two(16), powers_of_two(6)
([1, 2, 4, 8, 16], [1, 2, 4])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from curate.grade import pass_at_k
from curate.verification import normalize_answer

__all__ = ["majority_correct", "pass_at_k", "powers_of_two", "scores"]

Z95 = 1.959963984540054
"""The normal quantile of a two-sided 95% interval."""


def powers_of_two(n: int) -> list[int]:
    """The ``k`` of pass@k and maj@k for ``n`` samples: 1, 2, 4, ... up to ``n``."""
    return [2**i for i in range(n.bit_length())] if n >= 1 else []


def majority_correct(
    answers: Sequence[str | None], correct: Sequence[bool], k: int | None = None
) -> bool:
    """Whether the majority vote of the first ``k`` samples (all by default) is right; see
    the module doc for how votes are grouped and ties broken."""
    k = len(answers) if k is None else k
    votes: dict[str, list[int]] = {}  # group -> [votes, first sample]
    for i, (answer, right) in enumerate(zip(answers[:k], correct[:k], strict=True)):
        if right:
            group = "\x00gold"
        elif answer is None or not answer.strip():
            continue
        else:
            group = normalize_answer(answer)
        votes.setdefault(group, [0, i])[0] += 1
    if not votes:
        return False
    winner = min(votes, key=lambda g: (-votes[g][0], votes[g][1]))
    return winner == "\x00gold"


def scores(problems: Sequence[dict[str, Any]], n: int) -> dict[str, Any]:
    """The numbers of one benchmark from its problems, each a dict with the lists
    ``correct``, ``answers`` and ``finish`` (finish reasons) and ``verdicts``, in sample
    order, of ``n`` samples each.

    >>> p = [{"correct": [True, False], "answers": ["1", "2"], "finish": ["stop", "length"],
    ...       "verdicts": ["equivalent", "truncated"]},
    ...      {"correct": [False, False], "answers": [None, "3"], "finish": ["stop", "stop"],
    ...       "verdicts": ["no_answer", "different"]}]
    >>> s = scores(p, 2)
    >>> s["pass@1"], s["pass@2"], s["maj@2"], s["truncated"], s["no_answer"]
    (0.25, 0.5, 0.5, 0.25, 0.25)
    """
    size = len(problems)
    ks = powers_of_two(n)
    out: dict[str, Any] = {"problems": size, "samples": size * n}
    if not size:
        return out | {f"{m}@{k}": None for m in ("pass", "maj") for k in ks} | {
            "pass@1_se": None, "pass@1_ci95": None, "truncated": None, "no_answer": None,
            "errors": None,
        }  # fmt: skip
    first = [sum(p["correct"]) / n for p in problems]
    for k in ks:
        values = [pass_at_k(n, sum(p["correct"]), k) or 0.0 for p in problems]
        out[f"pass@{k}"] = sum(values) / size
    mean = sum(first) / size
    var = sum((x - mean) ** 2 for x in first) / (size - 1) if size > 1 else 0.0
    out["pass@1"] = mean
    out["pass@1_se"] = math.sqrt(var / size)
    out["pass@1_ci95"] = Z95 * out["pass@1_se"]
    for k in ks:
        wins = [majority_correct(p["answers"], p["correct"], k) for p in problems]
        out[f"maj@{k}"] = sum(wins) / size
    total = size * n
    out["truncated"] = sum(f == "length" for p in problems for f in p["finish"]) / total
    out["no_answer"] = sum(v == "no_answer" for p in problems for v in p["verdicts"]) / total
    out["errors"] = sum(f == "error" for p in problems for f in p["finish"]) / total
    return out
