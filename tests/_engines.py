"""A scripted `Generator` shared by the tests of the stages that consume generations.

It stands in for an inference engine where the engine is not what is under test (the
responses cache, grading, selection, export, the card); real generation is tested with the
toy model in test_distill_e2e.py and each backend's own tests.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from curate.generate import Completion, Request, Sampling


@dataclass(frozen=True)
class Scripted:
    """Answers "What is a + b?" right with probability ``skill`` (seeded), thinking first.

    Even samples write ``<think>...</think>`` in full; odd ones, as R1 does after its chat
    template opened the thinking, only the closing tag. The thinking holds a wrong
    ``\\boxed{0}`` (the answer is read after ``</think>``) and a few filler words, so lengths
    vary. Special prompts: "TRUNCATE" gives finish_reason length (with a right answer),
    "FAIL" an error completion, "MUMBLE" no answer at all. ``calls`` records the samples
    asked for per `generate` call.
    """

    label: str = "scripted"
    skill: float = 0.5

    def __post_init__(self) -> None:  # a record of calls, not configuration: not a field
        object.__setattr__(self, "calls", [])

    @property
    def model(self) -> str:
        return self.label

    def describe(self) -> dict[str, Any]:
        return {"class": "Scripted", "label": self.label, "skill": self.skill}

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        self.calls.append(sum(r.n for r in requests))  # type: ignore[attr-defined]
        return [self._answer(r, sampling) for r in requests]

    def _answer(self, r: Request, sampling: Sampling) -> list[Completion]:
        text = r.prompt if isinstance(r.prompt, str) else r.prompt[-1]["content"]
        rng = random.Random(f"{r.seed}{sampling.temperature}")
        m = re.search(r"(\d+) \+ (\d+)", text)
        total = int(m.group(1)) + int(m.group(2)) if m else 0
        done = []
        for i in range(r.n):
            guess = total if rng.random() < self.skill else total + 1
            think = f"{total - 1}? no, \\boxed{{0}}.{' hm' * (total % 7)}</think>\n"
            body = ("" if i % 2 else "<think>\n") + think + f"So \\boxed{{{guess}}}."
            if "TRUNCATE" in text:
                done.append(Completion(f"<think>\\boxed{{{total}}}", "length", 7))
            elif "FAIL" in text:
                done.append(Completion.failed("server said 500 after 6 retries"))
            elif "MUMBLE" in text:
                done.append(Completion("I do not know.", "stop", 4))
            else:
                done.append(Completion(body, "stop", len(body.split())))
        return done

    def close(self) -> None:
        pass
