"""Math filters: the pure rules on real-looking problems, and their stages in a run."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from _factories import problems_frame

import curate
from curate.errors import ConfigError
from curate.math_filters import (
    FigureFilter,
    LanguageFilter,
    LengthFilter,
    MultipleChoiceFilter,
    ProofFilter,
    choice_cue,
    count_tokens,
    english_share,
    figure_cue,
    language_cue,
    proof_cue,
    script_shares,
)
from curate.run import apply_stage

ENGLISH = [
    r"Find the value of $x$ such that $\sqrt{x+7} = 9$.",
    "Natalia sold clips to 48 of her friends in April. How many clips did she sell?",
    r"Evaluate $\log_82$.",
    r"Let $f(x)=\dfrac{ax+b}{cx+d}$ with $abcd\neq0$. Find $a+d$.",
    r"$\frac{2020}{6063}$",  # no words: kept
]


@pytest.mark.parametrize("text", ENGLISH)
def test_english_problems_pass_the_language_rule(text: str) -> None:
    assert language_cue(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("设函数 f(x)=|2-\\log_3x|，正实数 a,b,c 满足 a<b<c，求 ac/b 的值.", "non_latin_script"),
        ("计算：x(x-2y)+(x+y)^2", "non_latin_script"),
        (
            "Найдите все натуральные числа $n$, для которых $n^2+1$ делится на $n+1$.",
            "non_latin_script",
        ),
        (
            "Encuentre todos los números enteros positivos tales que la suma de sus cifras es $9$.",
            "not_english",
        ),
        (
            "Bestimmen Sie alle reellen Zahlen $x$, für die die Gleichung gilt und zeigen Sie es.",
            "not_english",
        ),
    ],
)
def test_other_languages_are_flagged(text: str, reason: str) -> None:
    cue = language_cue(text)
    assert cue is not None and cue[0] == reason


def test_scripts_and_english_words() -> None:
    assert script_shares(r"Let $\alpha = \pi$ and α be real.") == {"LATIN": 1.0}
    assert next(iter(script_shares("已知 abc 是正数"))) == "CJK"
    share, words = english_share("the the cat")
    assert words == 3 and share == pytest.approx(2 / 3)
    assert (
        language_cue("Trouver la valeur de la fonction dans le plan complexe.", min_english=0)
        is None
    )


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("[asy] draw((0,0)--(1,0)); [/asy] Find $x$.", "[asy]"),
        (
            r"\begin{tikzpicture}\draw (0,0)--(1,1);\end{tikzpicture} Find the slope.",
            r"\begin{tikzpicture}",
        ),
        ("In the figure below, $ABCD$ is a square.", "In the figure"),
        ("The figure shows four of the entries of a magic square.", "The figure"),
        ("Points $A$ and $B$ are on the circle as shown. Find $AB$.", "as shown"),
        ("The triangle shown above has area $6$.", "shown above"),
        ("See Figure 3 for the layout.", "See Figure"),
    ],
)
def test_figure_cues(text: str, cue: str) -> None:
    assert figure_cue(text) == cue


@pytest.mark.parametrize(
    "text",
    [
        "Help Bob figure out how many pens he can buy with $\\$10$.",
        "Graph the function $y = x^2$ and find its vertex.",
        "On a $3\\times3$ grid, how many ways are there to place two beads?",
        "Give your answer to three significant figures.",
        r"The values of $f$ are given below: \begin{tabular}{c|c} 1 & 2 \end{tabular} Find $f(1)$.",
        r"One grid is shown below: $$\begin{bmatrix} 1 & 2 \end{bmatrix}$$ How many are there?",
    ],
)
def test_no_figure_cue(text: str) -> None:
    assert figure_cue(text) is None


def test_drawings_kept_when_asked() -> None:
    drawn = "[asy] draw((0,0)--(1,1)); [/asy] As shown, find the slope."
    assert figure_cue(drawn, drawings=False) is None
    assert figure_cue("As shown, find the slope.", drawings=False) == "As shown"


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        (
            r"What is $1+1$? $\textbf{(A)}\ 1 \qquad \textbf{(B)}\ 2 \qquad \textbf{(C)}\ 3$",
            "(A) ... (B)",
        ),
        ("Which is prime?\n(A) 4\n(B) 6\n(C) 7", "(A) ... (B)"),
        (r"$2.46\times 8.163$ is closest to $(A) 10 \qquad (B) 20$", "(A) ... (B)"),
        ("Which is largest?  A. $2^{10}$  B. $10^3$  C. $3^6$", "A. ... B. ... C."),
        ("下列运算正确的是（）\nA.a^2+a^3  B.a^2a^3  C.(a^2)^3", "A. ... B. ... C."),
        ("Which curve is it? Options: line, circle, parabola.", "Options:"),
        ("Enter the letter of the correct option.", "Enter the letter"),
    ],
)
def test_choice_cues(text: str, cue: str) -> None:
    assert choice_cue(text) == cue


@pytest.mark.parametrize(
    "text",
    [
        "Let $f(A) = 2$ and $f(B) = 3$. Find $f(A)+f(B)$.",
        '[asy] dot(A); dot(B); label("$A$", A); [/asy] Find $AB$.',
        "Bag A has 3 white marbles. Bag B has 6 yellow marbles. Find the probability.",
        "Points A. B and C lie on a line.",
        "The university has three options: it can invest in dorms, parties or food.",
    ],
)
def test_no_choice_cue(text: str) -> None:
    assert choice_cue(text) is None


@pytest.mark.parametrize(
    ("problem", "answer", "flagged"),
    [
        ("Prove that $\\sqrt{2}$ is irrational.", None, True),
        ("Prove that $\\sqrt{2}$ is irrational.", "  ", True),
        ("Show that $n^3-n$ is divisible by $6$.", "Proof", True),
        ("Show that $n^3-n$ is divisible by $6$.", r"\text{proof}", True),
        ("Show that the product is a perfect square.", "It is the square of an integer", True),
        ("Compute $2+2$.", "See proof", True),
        ("Show that the number is an integer and determine it.", "42", False),
        ("Prove that the minimum exists and find it.", r"\frac{3}{2}", False),
        ("Find the minimum of $x^2+1$.", None, False),  # RequireGradable's business
    ],
)
def test_proof_cue(problem: str, answer: str | None, flagged: bool) -> None:
    assert (proof_cue(problem, answer) is not None) is flagged


def test_count_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("Find $x$.") == 5
    assert count_tokens("一只小虫") == 4


def test_stages_reject_with_reason_and_detail() -> None:
    rows = problems_frame(
        [
            (r"Find $1+1$.", "2"),
            ("已知 $x+1=2$，求 $x$ 的值。", "1"),
            ("In the diagram below, find the angle $x$.", "30"),
            (r"What is $2+2$? $\textbf{(A)}\ 3 \qquad \textbf{(B)}\ 4$", "4"),
            ("Prove that there are infinitely many primes.", None),
            ("x" * 200, "1"),
        ]
    )
    expected = {
        LanguageFilter(): ("non_latin_script", 1),
        FigureFilter(): ("needs_figure", 2),
        MultipleChoiceFilter(): ("multiple_choice", 3),
        ProofFilter(): ("proof", 4),
        LengthFilter(max_length=100): ("too_long", 5),
    }
    for stage, (reason, row) in expected.items():
        kept, rejects = apply_stage(stage, rows)
        assert rejects["id"].to_list() == [rows["id"][row]], stage
        assert rejects["reason"].to_list() == [reason]
        assert rejects["detail"][0]
        assert kept.height == rows.height - 1 and kept.columns == rows.columns


def test_length_in_chars_and_tokens_and_nulls() -> None:
    rows = pl.DataFrame(
        {"id": ["a", "b", "c", "d"], "problem": ["Find $x$.", "short", None, "a b c d e f g h i j"]}
    )
    _, rejects = apply_stage(LengthFilter(min_length=6, max_length=12), rows)
    assert dict(rejects.select("id", "reason").rows()) == {
        "b": "too_short",
        "c": "too_short",
        "d": "too_long",
    }
    assert rejects.filter(pl.col("id") == "d")["detail"][0] == "19 chars > 12"
    _, rejects = apply_stage(LengthFilter(min_length=2, max_length=8, unit="tokens"), rows)
    assert dict(rejects.select("id", "reason").rows()) == {
        "b": "too_short",
        "c": "too_short",
        "d": "too_long",
    }
    _, rejects = apply_stage(LengthFilter(min_length=None, max_length=None), rows)
    assert rejects.height == 0


def test_proof_filter_without_an_answer_column() -> None:
    rows = pl.DataFrame({"id": ["a", "b"], "problem": ["Prove that 1 < 2.", "Find 1+1."]})
    _, rejects = apply_stage(ProofFilter(), rows)
    assert rejects["id"].to_list() == ["a"]


def test_filters_in_a_run(tmp_path: Path) -> None:
    records = [
        {"problem": "Find the value of $3 \\cdot 4$.", "answer": "12"},
        {"problem": "求 $2+3$ 的值。", "answer": "5"},
        {"problem": "As shown, the square has side $2$. Find its area.", "answer": "4"},
        {"problem": "Prove that $2$ is prime.", "answer": "Proof"},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    stages = [
        LanguageFilter(),
        FigureFilter(),
        MultipleChoiceFilter(),
        ProofFilter(),
        LengthFilter(),
    ]
    run = curate.Recipe("filters", [curate.read(path)], stages).run(tmp_path / "run")
    assert run.table("problems").collect()["answer"].to_list() == ["12"]
    reasons = run.sql("SELECT reason FROM rejects ORDER BY reason")["reason"].to_list()
    assert reasons == ["needs_figure", "non_latin_script", "proof"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: LanguageFilter(min_latin=2),
        lambda: LanguageFilter(min_words=0),
        lambda: LengthFilter(unit="bytes"),  # type: ignore[arg-type]
        lambda: LengthFilter(min_length=10, max_length=5),
        lambda: LengthFilter(min_length=-1),
    ],
)
def test_bad_options(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]
