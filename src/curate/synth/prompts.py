r"""The prompts that ask a model for a new problem from a text, per education stage.

The structure follows JiuZhang3.0 (an instruction, the math content, guidelines for a new
problem and its solution, then "New problem:"); the wording is curate's own. Each text gets
one education stage, drawn from the text's id and the recipe seed, so a re-run draws the
same ones. `Prompts` holds the template and the stages; its `version` names the defaults
(``jz-1``) or, for any change, a digest of the wording, and goes with every synthesized
row (and into the cache key, so a new wording generates again).

>>> p = Prompts()
>>> p.version, list(p.stages)[:3]
('jz-1', ['grade_school', 'middle_school', 'high_school'])
>>> prompt = p.build("Two primes differ by 2: twin primes.", "grade_school")
>>> prompt.splitlines()[-3:]
['Write the final answer of the solution in \\boxed{}.', '', '## New problem']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from curate.errors import ConfigError
from curate.generate.base import derive_seed

PROMPT_VERSION = "jz-1"
"""The version of the default wording; bump it when `TEMPLATE` or `EDUCATION_STAGES` change."""

EDUCATION_STAGES: dict[str, str] = {
    "grade_school": (
        "a grade school student (ages 6 to 12): whole numbers, fractions, decimals, "
        "percentages, money, time and simple measurement, told as a short story"
    ),
    "middle_school": (
        "a middle school student: ratios and rates, negative numbers, simple equations, "
        "areas and volumes, basic probability and counting"
    ),
    "high_school": (
        "a high school student: algebra, functions, polynomials, trigonometry, coordinate "
        "geometry, sequences, probability"
    ),
    "college": (
        "a college student: calculus, linear algebra, differential equations, discrete "
        "mathematics or probability, with a single final answer that can be checked"
    ),
    "amc_8": "a student preparing for the AMC 8 competition (middle school contest problems)",
    "amc_10": "a student preparing for the AMC 10 competition (high school contest problems)",
    "amc_12": "a student preparing for the AMC 12 competition (harder high school contests)",
    "aime": (
        "a student preparing for the AIME: a hard competition problem whose answer is an "
        "integer from 0 to 999"
    ),
}
"""The education stages and whom each problem is for (JiuZhang3.0's eight)."""

TEMPLATE = """You are a math teacher. Write a new math problem for {audience}, inspired by the math content below, and solve it.

## Math content
{text}

## Guidelines
1. The problem must be new and self-contained: a reader who never saw the content can solve it. Do not copy the content or ask about it.
2. Make it fit the student: the knowledge and the difficulty above.
3. The problem must have one final answer that can be checked: a number, an expression, or a choice.
4. Then write the solution step by step, in about 250 to 350 words, in English, with LaTeX for the math.
5. Write your answer in this form and nothing else:
New problem: <the problem>
Solution: <the solution, ending with the final answer in \\boxed{{}}>

Write the final answer of the solution in \\boxed{{}}.

## New problem
"""  # noqa: E501
"""The default template: ``{audience}`` (the stage's description) and ``{text}``."""


@dataclass(frozen=True)
class Prompts:
    """The synthesis prompt: a ``template`` with ``{audience}`` and ``{text}`` and the
    education ``stages`` (name -> whom the problem is for); ``max_chars`` cuts each text
    (JiuZhang3.0 keeps the first 1,000 characters)."""

    template: str = TEMPLATE
    stages: Mapping[str, str] = field(default_factory=lambda: dict(EDUCATION_STAGES))
    max_chars: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", dict(self.stages))
        for slot in ("{audience}", "{text}"):
            if slot not in self.template:
                raise ConfigError(f"Prompts(template=...): the template has no {slot}")
        if not self.stages or not all(isinstance(v, str) and v for v in self.stages.values()):
            raise ConfigError(
                f"Prompts(stages={self.stages!r}): expected a mapping of stage names to "
                "descriptions of whom the problem is for"
            )
        if self.max_chars < 1:
            raise ConfigError(f"Prompts(max_chars={self.max_chars}): expected >= 1")

    @property
    def version(self) -> str:
        """``jz-1`` for the defaults; ``custom-<digest>`` of the wording otherwise."""
        if self.template == TEMPLATE and self.stages == EDUCATION_STAGES:
            return PROMPT_VERSION
        blob = json.dumps([self.template, self.stages], sort_keys=True).encode()
        return "custom-" + hashlib.blake2b(blob, digest_size=6).hexdigest()

    def stage_for(self, text_id: str, seed: int) -> str:
        """The education stage of a text: drawn from its id and the seed, the same every run."""
        names = list(self.stages)
        return names[derive_seed(seed, "education-stage", text_id) % len(names)]

    def build(self, text: str, stage: str) -> str:
        """The prompt for ``text`` (cut to ``max_chars``) at education stage ``stage``."""
        cut = text[: self.max_chars].strip()
        return self.template.format(audience=self.stages[stage], text=cut)

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "max_chars": self.max_chars, "template": self.template}
