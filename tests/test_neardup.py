"""Near-duplicates across transcriptions: the same problem as different sources write it.

The pairs are written for this test (variants of well-known competition problems, in the
ways the shared pools differ: one source keeps the Asymptote figure or the answer choices,
another drops them or names a picture file; one numbers a list of conditions; one adds an
answer-format sentence). ``benchmarks/bench_neardup.py`` measures the same on real pools.
"""

from __future__ import annotations

import polars as pl
import pytest
from _factories import problems_frame

from curate.dedup.clusters import keeper_of
from curate.dedup.minhash import MinHashDedup
from curate.run import apply_stage
from curate.shingles import _tokens, dedup_text, math_tokens, numbers, token_hash

FIGURE = (
    "[asy]\nsize(120); draw((0,0)--(8,0)--(8,6)--cycle);\n"
    'label("$8$", (4,0), S); label("$6$", (8,3), E);\n[/asy]'
)
SAME = {
    "figure dropped": (
        "A right triangle has legs of length $8$ and $6$, as shown. What is the length of the "
        f"altitude drawn to the hypotenuse?\n\n{FIGURE}",
        "A right triangle has legs of length 8 and 6, as shown. What is the length of the "
        "altitude drawn to the hypotenuse?",
    ),
    "picture file": (
        "Points $A$, $B$, $C$ lie on a circle of radius $5$ with $AB = 6$ and $BC = 8$. Find "
        "the largest possible area of triangle $ABC$ as shown.\n\n2004 AIME Problem 7.png",
        r"Points \(A\), \(B\), \(C\) lie on a circle of radius \(5\) with \(AB=6\) and "
        r"\(BC=8\). Find the largest possible area of triangle \(ABC\) as shown.",
    ),
    "choices dropped": (
        "How many positive divisors of $3600$ are perfect squares that are also multiples of "
        r"$4$? $\textbf{(A)}\ 6 \qquad \textbf{(B)}\ 8 \qquad \textbf{(C)}\ 9 \qquad "
        r"\textbf{(D)}\ 12 \qquad \textbf{(E)}\ 16$",
        "How many positive divisors of $3600$ are perfect squares that are also multiples of $4$?",
    ),
    "enumerated list": (
        "Find the number of subsets $S$ of $\\{1,2,\\ldots,12\\}$ such that:\n"
        "1. no two elements of $S$ are consecutive integers, and\n"
        "2. every element of $S$ is at least the number of elements of $S$.",
        "Find the number of subsets $S$ of $\\{1, 2, \\dots, 12\\}$ such that no two elements "
        "of $S$ are consecutive integers, and every element of $S$ is at least the number of "
        "elements of $S$.",
    ),
    "answer-format sentence": (
        "The probability that a randomly chosen divisor of $10^{6}$ is a multiple of $10^{3}$ "
        "is $\\frac{m}{n}$ in lowest terms. Find $m+n$.",
        "The probability that a randomly chosen divisor of $10^6$ is a multiple of $10^3$ is "
        "$\\dfrac{m}{n}$ in lowest terms. Find $m + n$. The original answer is in the form of "
        "an integer, please provide the value.",
    ),
}


def _changed(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


# Another problem: one number of the statement (or of what the figure labels) changed.
OTHER = {
    "statement": (SAME["choices dropped"][0], _changed(SAME["choices dropped"][1], "3600", "3700")),
    "figure label": (
        SAME["figure dropped"][0],
        _changed(_changed(SAME["figure dropped"][0], '"$6$"', '"$7$"'), "and $6$", "and $7$"),
    ),
    "list": (SAME["enumerated list"][0], _changed(SAME["enumerated list"][1], "12", "13")),
}


def _clusters(texts: list[str]) -> tuple[list[str | None], pl.DataFrame]:
    kept, rejects = apply_stage(MinHashDedup(), problems_frame([(t, None) for t in texts]))
    rows = pl.concat([kept, rejects], how="diagonal").sort("id")
    return rows["minhash_cluster"].to_list(), rejects


@pytest.mark.parametrize("kind", sorted(SAME))
def test_transcriptions_of_one_problem_are_duplicates(kind: str) -> None:
    a, b = SAME[kind]
    assert numbers(a) == numbers(b)
    cluster, rejects = _clusters([a, b])
    assert cluster[0] is not None and cluster[0] == cluster[1], (math_tokens(a), math_tokens(b))
    assert rejects.height == 1


@pytest.mark.parametrize("kind", sorted(OTHER))
def test_a_changed_number_is_another_problem(kind: str) -> None:
    a, b = OTHER[kind]
    assert numbers(a) != numbers(b)
    cluster, rejects = _clusters([a, b])
    assert cluster == [None, None] and rejects.height == 0


def test_questions_about_the_choices_keep_them() -> None:
    ask = r"Which of the following is the largest? $\textbf{(A)}\ 2^{10} \qquad \textbf{(B)}\ "
    a, b = ask + r"3^{6}$", ask + r"5^{4}$"
    assert dedup_text(a) == a and numbers(a) != numbers(b)
    # elsewhere the options go: they are the answer's candidates, not the problem's data
    assert numbers("Find $2^{10}$. (A) 1024 (B) 1000") == ["10", "2"]


def test_a_figure_alone_holds_the_data_then_its_numbers_count() -> None:
    shape = "Find the area of the polygon shown. [asy] draw((0,0)--(3,0)--(3,{})--cycle); [/asy]"
    a, b = shape.format(4), shape.format(5)
    assert numbers(a) == ["0", "0", "0", "3", "3", "4"] and numbers(a) != numbers(b)


def test_the_vectorized_path_reads_the_same_statement() -> None:
    texts = [t for pair in (*SAME.values(), *OTHER.values()) for t in pair]
    texts += ['[ASY] label("$9$", (0,0)); [/ASY] Find x.', "(A) 1 (B) 2", "see fig.PNG 3"]
    texts += [
        "Find $x$.\n<asy>draw((0,0)--(1,1));</asy>",
        "Find $a\\kern 0.1em b$ and $y$.\n ~ pi_is_3.14 ~user2",
        "Let $A=\\begin{array}{c@{\\hspace{3pt}}c} 1 & 2 \\end{array}$. See http://x.io/a1",
        "Diagram by X (talk) 18:52, 15 February 2021 (EST)\n\\begin{tikzpicture}\\end{tikzpicture}",
    ]
    tokens = _tokens(pl.Series(texts))
    for i, text in enumerate(texts):
        got = tokens.hashes[tokens.offsets[i] : tokens.offsets[i + 1]].tolist()
        assert got == [token_hash(t) for t in math_tokens(text)], text
    assert [numbers(t) for t in texts[-7:]] == [
        ["9"],
        [],
        ["3"],
        ["0", "0", "1", "1"],
        [],
        ["1", "2"],
        [],
    ]


def test_the_reject_detail_says_how_similar() -> None:
    a, b = SAME["figure dropped"]
    _, rejects = _clusters([a, b])
    detail = rejects["detail"][0]
    keeper, _, rest = detail.partition(" (jaccard ")
    assert keeper_of(detail) == keeper and rest.endswith(")")
    assert 0.7 <= float(rest[:-1]) <= 1.0
