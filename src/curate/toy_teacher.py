r"""A scripted teacher for problem synthesis at toy scale: the stand-in for GPT-4 behind an
OpenAI-compatible server, which cannot run here.

`ToyTeacher` is a `curate.generate.Generator`. For each prompt it finds the math content
(between ``## Math content`` and the next ``##`` heading, or the whole prompt), takes the
first two numbers in it (or numbers drawn from the sample's seed), and writes a problem on
them in `curate.toy`'s task (``What is 37 + 48?``, with a worked ``<think>`` solution and a
boxed answer), so a toy model can learn to write what it writes. It also misbehaves the
way real teachers do, at the rates given (each sample draws one outcome from its seed):

- ``refuse``: "I'm sorry, but I can't help with that.";
- ``empty``: nothing; ``truncate``: cut mid-solution (``finish_reason="length"``);
- ``no_box``: a solution without ``\boxed{}``; ``foreign``: the problem in Chinese;
- ``no_solution``: a problem and no solution;
- ``benchmark``: a MATH-500 test problem copied verbatim (from curate's benchmark
  catalog), which decontamination must catch;
- ``repeat``: one of a few favourite problems again, which deduplication must catch;
- ``copy``: the math content itself as the "new" problem, which decontamination against
  the source texts must catch.

>>> from curate.generate import Request, Sampling
>>> t = ToyTeacher.clean()
>>> [[c]] = t.generate([Request("## Math content\nTake 12 and 30.\n## Guidelines", seed=1)],
...                   Sampling())
>>> print(c.text)
New problem: What is 12 + 30?
Solution: <think>12 + 30 = 42</think> The answer is \boxed{42}.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

from curate.generate.base import Completion, Request, Sampling, as_messages
from curate.toy import _row

_CONTENT = re.compile(r"##\s*Math content\s*\n(.*?)(?:\n##|\Z)", re.S)
_NUMBER = re.compile(r"(?<![\d.])\d{1,3}(?!\d|\.\d)")
_FAVOURITES = ((12, 34), (25, 25), (7, 8))  # what a repetitive teacher keeps writing


@cache
def _math500() -> tuple[tuple[str, str], ...]:
    """(problem, answer) of MATH-500's test problems, from curate's benchmark catalog."""
    path = resources.files("curate.decontam") / "data" / "math500.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return tuple((r["problem"], r["answer"]) for r in rows)


@dataclass(frozen=True)
class ToyTeacher:
    """A deterministic teacher (see the module docstring); the rates are per sample."""

    refuse: float = 0.04
    empty: float = 0.03
    truncate: float = 0.03
    no_box: float = 0.04
    foreign: float = 0.03
    no_solution: float = 0.03
    benchmark: float = 0.05
    repeat: float = 0.08
    copy: float = 0.0
    label: str = "toy-teacher"

    @classmethod
    def clean(cls, label: str = "toy-teacher") -> ToyTeacher:
        """A teacher that never misbehaves."""
        names = ("refuse", "empty", "truncate", "no_box", "foreign", "no_solution")
        return cls(**dict.fromkeys((*names, "benchmark", "repeat", "copy"), 0.0), label=label)

    @property
    def model(self) -> str:
        return self.label

    def describe(self) -> dict[str, Any]:
        return {"backend": "toy-teacher", "version": 1, **asdict(self)}

    def close(self) -> None:
        pass

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        out = []
        for request in requests:
            content = _content(request.prompt)
            out.append(
                [
                    self._one(content, random.Random(request.sample_seed(j)), sampling)
                    for j in range(request.n)
                ]
            )
        return out

    def _one(self, content: str, rng: random.Random, sampling: Sampling) -> Completion:
        outcome = self._outcome(rng)
        numbers = [int(x) for x in _NUMBER.findall(content)[:2]]
        while len(numbers) < 2:
            numbers.append(rng.randint(0, 99))
        a, b = numbers
        if outcome == "repeat":
            a, b = rng.choice(_FAVOURITES)
        problem, _, solution = _row(a, "+", b)
        if outcome == "benchmark":
            problem, answer = rng.choice(_math500())
            solution = f"We work it out step by step. The answer is $\\boxed{{{answer}}}$."
        if outcome == "copy":
            problem = " ".join(content.split())
        text = f"New problem: {problem}\nSolution: {solution}"
        finish = "stop"
        if outcome == "refuse":
            text = "I'm sorry, but I can't help with that."
        elif outcome == "empty":
            text = ""
        elif outcome == "truncate":
            text, finish = text[: len(text) // 2], "length"
        elif outcome == "no_box":
            text = text.replace("\\boxed{", "{")
        elif outcome == "foreign":
            text = f"新问题：{a} 加 {b} 等于多少？\n解答：{a} 加 {b} 等于 {a + b}。"
            text += f"答案是 \\boxed{{{a + b}}}。"
        elif outcome == "no_solution":
            text = f"New problem: {problem}"
        tokens = min(max(1, len(text) // 4), sampling.max_tokens)
        return Completion(text, finish, tokens)  # type: ignore[arg-type]

    def _outcome(self, rng: random.Random) -> str:
        draw = rng.random()
        for name in (
            "refuse", "empty", "truncate", "no_box", "foreign", "no_solution", "benchmark",
            "repeat", "copy",
        ):  # fmt: skip
            rate = float(getattr(self, name))
            if draw < rate:
                return name
            draw -= rate
        return "ok"


def _content(prompt: Any) -> str:
    text = "\n".join(m["content"] for m in as_messages(prompt) if m["role"] == "user")
    m = _CONTENT.search(text)
    return m.group(1) if m else text
