r"""What a check answers (`Verdict`) and the settings it is made under (`VerifyOptions`).

>>> Verdict("equivalent", "numeric", gold="1/2", pred="0.5").equivalent
True
>>> VerifyOptions(rel_tol=1e-4).rel_tol
0.0001
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from curate.errors import ConfigError
from curate.verification.extract import GOLD_RULES, PRED_RULES, RULES, Rule, Think

Status = Literal[
    "equivalent",
    "different",
    "no_answer",
    "gold_unparseable",
    "pred_unparseable",
    "timeout",
    "error",
]
"""The outcome of a check. Only ``equivalent`` and ``different`` are decisions; the rest
say why no decision was made (and count as not correct where a 0/1 score is needed)."""
DECIDED: frozenset[str] = frozenset({"equivalent", "different"})
Percent = Literal["either", "value", "number"]
Relations = Literal["as_sets", "as_written"]
Symbols = Literal["strict", "lenient"]

GRADER_VERSION = "2"
"""Bumped when a verdict can change for the same inputs and options (stored verdicts
made under another version are re-checked; see `curate.distill`)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a prediction states the gold answer, and how that was decided.

    ``status`` is the outcome (see `Status`); ``reason`` says how it was reached:
    ``identical``, ``normalized``, ``numeric``, ``choice``, ``text`` or ``symbolic`` for
    a decision, or what stopped one (``empty``, ``no_answer``, ``unfinished_think``,
    ``too_long``, ``unparseable``, ``timeout``, ``error``); ``detail`` adds the specifics.
    ``gold`` and ``pred`` are the answers read from the two inputs (None if none was).
    """

    status: Status
    reason: str = ""
    detail: str = ""
    gold: str | None = None
    pred: str | None = None

    @property
    def equivalent(self) -> bool:
        """True only when the answers were found equivalent."""
        return self.status == "equivalent"

    @property
    def decided(self) -> bool:
        """True when the check reached a decision (equivalent or different)."""
        return self.status in DECIDED

    def as_dict(self) -> dict[str, Any]:
        """The verdict as JSON-able data (with ``equivalent``)."""
        return {"equivalent": self.equivalent, **asdict(self)}


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyOptions:
    r"""How answers are read and compared. Every option is keyword-only.

    Reading (see `curate.verification.extract`):

    - ``rules``: how the prediction is read, in order (default: a box, a final-answer
      sentence, a bare answer, the last math or number; with ``last`` among them, a
      choice letter or words the gold asks for are also read from the response's end);
    - ``gold_rules``: how the gold answer is read (default: a box, a final-answer sentence
      or ``####``, else the whole text);
    - ``think``: ``"after"`` reads what follows ``</think>`` (a response still thinking
      has no answer), ``"require"`` also finds no answer without a ``</think>``,
      ``"ignore"`` reads the whole text.

    Comparing:

    - ``rel_tol`` / ``abs_tol``: numbers within ``max(rel_tol * max(|a|, |b|), abs_tol)``
      of each other are equal (0 turns a tolerance off);
    - ``decimals``: when either number is written with a decimal point, both are also
      rounded to this many decimals (math-verify's rule; None turns it off);
    - ``percent``: ``"either"``: ``50\%`` equals 50 and 0.5; ``"value"``: only 0.5;
      ``"number"``: only 50;
    - ``relations``: ``"as_sets"``: a relation equals the set it describes, either way
      round (``-2 \le x \le 7`` and ``x \in [-2, 7]`` and ``[-2, 7]``);
      ``"as_written"``: only a gold relation against a predicted set (math-verify's
      default);
    - ``symbols``: ``"strict"``: the names of variables matter (``x+1`` is not ``y+1``);
      ``"lenient"``: variables are matched by position, and tuples compare with sets.

    The defaults were chosen on the table of real model outputs in
    ``tests/data/grading_cases.jsonl`` (``benchmarks/bench_grading.py``).
    """

    rules: tuple[Rule, ...] = PRED_RULES
    gold_rules: tuple[Rule, ...] = GOLD_RULES
    think: Think = "after"
    rel_tol: float = 0.0
    abs_tol: float = 0.0
    decimals: int | None = 6
    percent: Percent = "either"
    relations: Relations = "as_sets"
    symbols: Symbols = "strict"

    def __post_init__(self) -> None:
        for name in ("rules", "gold_rules"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            value = tuple(value)
            bad = [r for r in value if r not in RULES]
            if bad or not value:
                raise ConfigError(
                    f"VerifyOptions({name}={value!r}): expected one or more of {RULES}"
                )
            object.__setattr__(self, name, value)
        for name, kind in (
            ("think", Think),
            ("percent", Percent),
            ("relations", Relations),
            ("symbols", Symbols),
        ):
            if getattr(self, name) not in get_args(kind):
                raise ConfigError(
                    f"VerifyOptions({name}={getattr(self, name)!r}): "
                    f"expected one of {get_args(kind)}"
                )
        for name in ("rel_tol", "abs_tol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"VerifyOptions({name}={value!r}): expected a number >= 0")
        if self.decimals is not None and not (
            isinstance(self.decimals, int) and 0 <= self.decimals <= 15
        ):
            raise ConfigError(f"VerifyOptions(decimals={self.decimals!r}): expected None or 0..15")

    def worker_options(self) -> dict[str, Any]:
        """What the checker processes need of these options (JSON)."""
        return {
            "decimals": self.decimals,
            "rel_tol": self.rel_tol,
            "abs_tol": self.abs_tol,
            "percent": self.percent,
            "strict": self.symbols == "strict",
            "set_relation": self.relations == "as_sets",
        }

    def key(self) -> str:
        """A stable text naming these options and the grader version (for caches)."""
        return json.dumps([GRADER_VERSION, asdict(self)], sort_keys=True)


DEFAULT_OPTIONS = VerifyOptions()
