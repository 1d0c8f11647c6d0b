r"""Grading: reading the final answer of a response and deciding whether it is right.

The one grading path of curate (`Distill`, rewards, ``curate verify``, decontamination):

- `extract`: the rules that read an answer out of a response or a solution (with
  `boxes` for ``\boxed{}`` and `plain` for numbers in plain text);
- `normalize`: value-preserving normalization, plain numbers and choice letters;
- `check`: `verify` / `verify_many`, the fast comparisons and the checker pool;
- `verdict`: `Verdict` (with its `Status`) and `VerifyOptions`;
- `gradable`: whether a gold answer can be checked at all;
- `worker`: the checker process (math-verify under a time limit).

The package is not named ``verify``: ``curate.verify`` is the function.
"""

from curate.verification.boxes import last_boxed
from curate.verification.check import DEFAULT_TIMEOUT, averify, verify, verify_many
from curate.verification.extract import (
    GOLD_RULES,
    PRED_RULES,
    SOLUTION_RULES,
    Extraction,
    extract_answer,
    read_answer,
)
from curate.verification.gradable import Gradability, gradable, gradable_many
from curate.verification.normalize import normalize_answer
from curate.verification.verdict import DEFAULT_OPTIONS, Status, Verdict, VerifyOptions

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_TIMEOUT",
    "GOLD_RULES",
    "PRED_RULES",
    "SOLUTION_RULES",
    "Extraction",
    "Gradability",
    "Status",
    "Verdict",
    "VerifyOptions",
    "averify",
    "extract_answer",
    "gradable",
    "gradable_many",
    "last_boxed",
    "normalize_answer",
    "read_answer",
    "verify",
    "verify_many",
]
