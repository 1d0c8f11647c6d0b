r"""Answer verification: a table of real answer pairs, extraction, normalization,
gradability, and the time limit under hostile input, threads, async code and
worker processes.

Gold answers in the table are copied from public benchmarks (MATH-500, Minerva,
OlympiadBench, AIME, GaoKao 2023 En, GaoKao cloze, College Math, CMATH,
CN middle school); predictions are what a model writes. ``MV_DIFFERS`` lists the
pairs where our verdict is not math-verify's, on purpose (see the docstring of
`curate.verify`); every other verdict must be math-verify's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from curate._procpool import shared_pool
from curate.errors import ConfigError
from curate.verification import (
    Verdict,
    VerifyOptions,
    averify,
    extract_answer,
    gradable,
    gradable_many,
    last_boxed,
    normalize_answer,
    verify,
    verify_many,
)

V = importlib.import_module("curate.verification.check")
WORKER = "curate.verification.worker"

# (category, gold, prediction, a careful grader's verdict)
TABLE: list[tuple[str, str, str, bool]] = [
    # fractions (MATH-500, GaoKao)
    ("fraction", r"\frac{1}{2}", "0.5", True),
    ("fraction", r"\frac14", r"\frac{1}{4}", True),
    ("fraction", r"\frac 34", "0.75", True),
    ("fraction", r"\frac9{19}", r"\frac{9}{19}", True),
    ("fraction", r"\frac{3}{2}", "1.5", True),
    ("fraction", r"\frac{2}{3}", "0.67", False),
    ("fraction", r"\frac{2}{3}", r"\frac{4}{6}", True),
    ("fraction", r"-\frac{3}{8}", r"\frac{-3}{8}", True),
    ("fraction", r"-\frac{3}{8}", r"\frac{3}{8}", False),
    ("fraction", r"\dfrac{17}{50}", "0.34", True),
    ("fraction", r"\frac{1}{3}", "0.333", False),
    ("fraction", r"\frac{10}{11}", r"\frac{11}{10}", False),
    ("fraction", r"\frac{1997}{2}", "998.5", True),
    ("fraction", r"\frac{3}{56}", "3/56", True),
    ("fraction", r"\frac{448}{15625}", "0.028672", True),
    ("fraction", r"1\frac{4}{5}", r"\frac{9}{5}", True),
    ("fraction", r"137 \frac{1}{2}", "137.5", True),
    ("fraction", r"$6\frac23$", r"\frac{20}{3}", True),
    ("fraction", r"$2\frac58$", "2.625", True),
    # decimals (MATH-500, Minerva)
    ("decimal", "4.5", "4.50", True),
    ("decimal", ".35625", "0.35625", True),
    ("decimal", "3.21", "3.2", False),
    ("decimal", "0.15", r"\frac{3}{20}", True),
    ("decimal", "1.25", "1.2", False),
    ("decimal", "9.6", "9.60", True),
    ("decimal", "0.022", "0.0220", True),
    ("decimal", "0.5978", "0.598", False),
    # percent (GaoKao 2023 En, OlympiadBench, CMATH)
    ("percent", r"1.1\%", "1.1", True),
    ("percent", r"1.1\%", r"1.1 \%", True),
    ("percent", "62.5%", "62.5", True),
    ("percent", "62.5%", r"62.5\%", True),
    ("percent", r"$8 \%$", "8", True),
    ("percent", "17.5%", "0.175", True),
    ("percent", "12%", "0.12", True),
    ("percent", "25%", "20%", False),
    ("percent", r"10\%", r"20\%", False),
    # units (MATH-500, College Math)
    ("unit", r"5.4 \text{ cents}", "5.4", True),
    ("unit", r"15\mbox{ cm}^2", "15", True),
    ("unit", r"15\mbox{ cm}^2", "16", False),
    ("unit", r"864 \mbox{ inches}^2", "864", True),
    ("unit", r"\$18.90", "18.90", True),
    ("unit", r"\$18.90", "18.9", True),
    ("unit", r"\$36", "36", True),
    ("unit", r"\$36", "37", False),
    ("unit", r"\frac{270}7\text{ degrees}", r"\frac{270}{7}", True),
    ("unit", r"$12 \mathrm{~min}$", "12", True),
    ("unit", r"$2.5 \mathrm{~m}$", r"2.5\text{ m}", True),
    ("unit", r"$450 \mathrm{~m}$", "45", False),
    # \text{} answers (MATH-500)
    ("text", r"\text{east}", "east", True),
    ("text", r"\text{east}", r"\text{west}", False),
    ("text", r"\text{Evelyn}", "Evelyn", True),
    ("text", r"\text{Evelyn}", r"\text{Navin}", False),
    ("text", r"\text{even}", r"\text{odd}", False),
    ("text", r"\text{ellipse}", r"\text{Ellipse}", True),
    # intervals (MATH-500, GaoKao)
    ("interval", r"(2,\infty)", r"(2, \infty)", True),
    ("interval", r"(-\infty, 0]", r"(-\infty,0)", False),
    ("interval", r"(3,4]", "(3,4)", False),
    ("interval", r"x \in [-2,7]", "[-2,7]", True),
    ("interval", r"(-\infty, 2) \cup (3, \infty)", r"(3,\infty)\cup(-\infty,2)", True),
    ("interval", r"(0,9) \cup (9,36)", "(0,36)", False),
    ("interval", r"\left(\frac{3}{5},\frac{8}{3}\right]", r"(0.6, \frac{8}{3}]", True),
    ("interval", r"(5,\infty)", r"[5,\infty)", False),
    ("interval", r"(-\sqrt{3},-1) \cup (1, \sqrt{3})", r"(1,\sqrt{3})\cup(-\sqrt{3},-1)", True),
    ("interval", r"$[2,+\infty)$", r"[2,\infty)", True),
    ("interval", r"$\left(-\frac{1}{4},+\infty\right)$", r"(-0.25, \infty)", True),
    ("interval", r"$(-\infty,0)\cup(0,1]$", r"(-\infty,1]", False),
    # tuples (MATH-500, OlympiadBench)
    ("tuple", "(8,-2)", "(8, -2)", True),
    ("tuple", "(8,-2)", "(-2,8)", False),
    ("tuple", r"\left( 3, \frac{\pi}{2} \right)", r"(3,\pi/2)", True),
    ("tuple", "(1,-16,-4,43)", "(1,-16,-4,42)", False),
    ("tuple", r"\left( \frac{3}{2}, -13 \right)", "(1.5,-13)", True),
    ("tuple", "(6,31,-1)", "(6,31)", False),
    # sets and lists of answers (MATH-500, OlympiadBench)
    ("set", "3, 5, 7", "7, 5, 3", True),
    ("set", r"\{1\pm\sqrt{5},-2\}", r"\{-2, 1+\sqrt{5}, 1-\sqrt{5}\}", True),
    ("set", "1,-2", "-2,1", True),
    ("set", "-2,1", "-2", False),
    ("set", "2,3,4", r"\{2,3,4\}", True),
    ("set", "1,3,9,11", "1,3,9", False),
    ("set", r"$(1,8,19), (2,7,13), (4,5,7)$", r"(4,5,7), (1,8,19), (2,7,13)", True),
    ("set", r"$(3,0),(-3,1)$", r"(3,0)", False),
    # matrices and vectors (MATH-500)
    (
        "matrix",
        r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}",
        r"\begin{bmatrix} -1 & 0 \\ 0 & -1 \end{bmatrix}",
        True,
    ),
    (
        "matrix",
        r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}",
        r"\begin{pmatrix} -1 & 0 \\ 0 & 1 \end{pmatrix}",
        False,
    ),
    (
        "matrix",
        r"\begin{pmatrix} 1/5 \\ -18/5 \end{pmatrix}",
        r"\begin{pmatrix} 0.2 \\ -3.6 \end{pmatrix}",
        True,
    ),
    (
        "matrix",
        r"\begin{pmatrix} -7 \\ 16 \\ 5 \end{pmatrix}",
        r"\begin{pmatrix} -7 \\ 16 \\ -5 \end{pmatrix}",
        False,
    ),
    (
        "matrix",
        r"\begin{pmatrix} 16/49 \\ 48/49 \\ 24/49 \end{pmatrix}",
        r"\begin{pmatrix} \frac{16}{49} \\ \frac{48}{49} \\ \frac{24}{49} \end{pmatrix}",
        True,
    ),
    # degrees (MATH-500, OlympiadBench, CN middle school)
    ("degree", r"90^\circ", "90", True),
    ("degree", r"30^\circ", r"30^{\circ}", True),
    ("degree", r"$45^{\circ}$", r"45^\circ", True),
    ("degree", r"36^\circ", r"63^\circ", False),
    ("degree", r"120^\circ", "120°", True),
    ("degree", "125°", r"125^{\circ}", True),
    ("degree", r"$18.8^{\circ}$", "18.8", True),
    ("degree", r"$44^{\circ}$", r"46^{\circ}", False),
    # the question asks for degrees: radians are another answer (math-verify agrees)
    ("degree", r"$45^{\circ}$", r"\frac{\pi}{4}", False),
    # multiple choice (MATH-500 AMC-style, GaoKao 2024)
    ("choice", r"\text{(B)}", "B", True),
    ("choice", r"\text{(C)}", "(C)", True),
    ("choice", r"\text{(E)}", r"\textbf{(E)}", True),
    ("choice", r"\text{(B)}", r"\text{(D)}", False),
    ("choice", "D", "(D)", True),
    ("choice", "A", r"\textbf{(A)}", True),
    ("choice", "E", "D", False),
    # scientific notation (Minerva, College Math, CN middle school)
    ("scientific", r"8.7 \times 10^{8}", "870000000", True),
    ("scientific", "4.4e7", r"4.4 \times 10^7", True),
    ("scientific", "3.3e-10", r"3.3 \times 10^{-10}", True),
    ("scientific", r"7 \times 10^{37}", r"7\times10^{37}", True),
    ("scientific", r"5.3 \times 10^{-9}", r"5.3 \times 10^{-8}", False),
    ("scientific", r"1 \times 10^{-3}", "0.001", True),
    ("scientific", r"7.5 \times 10^7", r"7.6 \times 10^7", False),
    ("scientific", r"3.84 \times 10^{5}", "384000", True),
    ("scientific", r"$1.4 \times 10^{-3}$", "0.0014", True),
    ("scientific", r"$7.44 \times 10^{-4}$", r"7.44 \times 10^{-3}", False),
    ("scientific", r"5.784 \times 10^{11}", r"5.78 \times 10^{11}", False),
    # expressions (MATH-500, OlympiadBench)
    ("expression", "x^3+3x-6", "3x+x^3-6", True),
    ("expression", "(a+5)(b+2)", "(b+2)(a+5)", True),
    ("expression", "(a+5)(b+2)", "ab+2a+5b+10", True),
    ("expression", "8n^2 + 4n + 1", "8n^2+4n+2", False),
    ("expression", "6r^2-4r-24", "2(3r^2-2r-12)", True),
    ("expression", "p - q", "q - p", False),
    ("expression", r"\cot x", r"\frac{\cos x}{\sin x}", True),
    ("expression", r"\frac{11+9a}{20}", r"\frac{11}{20}+\frac{9a}{20}", True),
    ("expression", r"x^5 - x^4 + x^3 - x^2 + x - 1", r"(x-1)(x^4+x^2+1)", True),
    ("expression", r"$2^{n}-n-1$", "2^n-n+1", False),
    ("expression", r"$\binom{2n}{n}$", r"\frac{(2n)!}{(n!)^2}", True),
    # equations (MATH-500, GaoKao 2023 En)
    ("equation", "y = 2x + 3", "y=3+2x", True),
    ("equation", "y = 2x + 3", "y = 2x - 3", False),
    ("equation", "y = -2x", "-2x", True),
    ("equation", "x=5", "5", True),
    ("equation", "x=5", "x=-5", False),
    ("equation", "5x - 7y + 11z + 4 = 0", "-5x + 7y - 11z - 4 = 0", True),
    ("equation", r"$y=-2x+5$", "y=5-2x", True),
    # square roots (MATH-500, GaoKao)
    ("sqrt", r"2\sqrt{5}", r"\sqrt{20}", True),
    ("sqrt", r"11\sqrt2", r"11\sqrt{2}", True),
    ("sqrt", r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}", True),
    ("sqrt", r"\sqrt{51}", "7.14", False),
    ("sqrt", r"3 \pm 2 \sqrt{2}", r"3+2\sqrt{2}, 3-2\sqrt{2}", True),
    ("sqrt", r"$\sqrt{5}-1$", r"-1+\sqrt{5}", True),
    ("sqrt", r"$2-\sqrt{3}$", r"\sqrt{3}-2", False),
    ("sqrt", r"$\frac{3\sqrt{5}}{5}$", r"\frac{3}{\sqrt{5}}", True),
    ("sqrt", r"$\frac{-1+\sqrt{5}}{4}$", r"\frac{\sqrt{5}-1}{4}", True),
    # pi (MATH-500, GaoKao 2023 En)
    ("pi", r"7\pi", r"7 \pi", True),
    ("pi", r"12\pi", "37.7", False),
    ("pi", r"\frac{20000}{\pi}", r"20000/\pi", True),
    ("pi", r"-\frac{\pi}{6}", r"-\pi/6", True),
    ("pi", r"18+2\pi", r"2\pi+18", True),
    ("pi", r"$\frac{3\pi}{10}$", r"0.3\pi", True),
    ("pi", r"$\frac{\pi}{3}$", r"\frac{\pi}{6}", False),
    # negative numbers (MATH-500)
    ("negative", "-4", "4", False),
    ("negative", "-50", "- 50", True),
    ("negative", "-128", "-128.0", True),
    ("negative", r"-\sqrt{3}", r"\sqrt{3}", False),
    ("negative", r"-\frac{24}{25}", "-0.96", True),
    ("negative", r"$-\frac{\sqrt{2}}{3}$", r"\frac{\sqrt{2}}{3}", False),
    # thousands separators (MATH-500, GaoKao 2023 En, GaoKao 2024)
    ("thousands", "58,500", "58500", True),
    ("thousands", "58,500", "58.5", False),
    ("thousands", "58,500", "58, 500", False),  # with a space: the list 58, 500
    ("thousands", r"10,\!080", "10080", True),
    ("thousands", r"11,\! 111,\! 111,\! 100", "11111111100", True),
    ("thousands", r"\$32,\!348", "32348", True),
    ("thousands", "$1,625$", "1625", True),
    ("thousands", "$2,900$", "2900.0", True),
    ("thousands", "24,112", "24112", True),
    ("thousands", "$35,000$", "35,000", True),
    ("thousands", r"1\,000", "1000", True),
    ("thousands", "1{,}625", "1625", True),
    # complex numbers (MATH-500, GaoKao 2023 En)
    ("complex", "1+2i", "2i+1", True),
    ("complex", "6 - 5i", "6+5i", False),
    ("complex", r"$1-i$", "-i+1", True),
    ("complex", r"$-i$", "i", False),
    ("complex", r"$7 i$", "7i", True),
    # integers (AIME, AMC, GSM8K)
    ("integer", "025", "25", True),
    ("integer", "142.0", "142", True),
    ("integer", "204", "240", False),
    ("integer", "18", "18.00", True),
    ("integer", "4210_{5}", "4210_5", True),
    ("integer", "204", "204.", True),
    # words and formulas (College Math)
    ("words", r"$x=-6$ or $x=6$", "x=6 or x=-6", True),
    ("words", r"$x=-6$ or $x=6$", "x=6", False),
    ("words", r"$x=\frac{1}{5}$ or $x=5$", r"x=5, x=\frac{1}{5}", True),
    ("words", r"$\max$ at $x=2$, min at $x=4$", r"$\max$ at $x=3$, min at $x=4$", False),
    ("words", "No solution", r"\text{no solution}", True),
]

# Where we differ from math-verify on purpose (see curate.verify's docstring).
MV_DIFFERS = {
    (r"1.1\%", "1.1"),  # math-verify: 9% == 9 for integers, 1.1% != 1.1 for decimals
    ("62.5%", "62.5"),
    (r"120^\circ", "120°"),  # math-verify cannot parse the degree sign
    ("125°", r"125^{\circ}"),
    (r"8.7 \times 10^{8}", "870000000"),  # math-verify: 8.7 as a float times 10^8
    ("4.4e7", r"4.4 \times 10^7"),  # math-verify: 4.4 * e * 7
    ("3.3e-10", r"3.3 \times 10^{-10}"),
    (r"1\,000", "1000"),  # math-verify: 1 * 000 = 0
    ("204", "204."),  # math-verify finds no number in "204."
    (r"$7 i$", "7i"),  # math-verify: i is the imaginary unit in "7 i", a variable in "7i"
}


def _id(category: str, gold: str, pred: str) -> str:
    text = f"{category}: {gold} vs {pred}".replace("\\", "").replace("\n", " ")
    return text if len(text) <= 70 else text[:67] + "..."


PAIRS = [pytest.param(g, p, e, id=_id(c, g, p)) for c, g, p, e in TABLE]


def _math_verify_directly(pairs: list[tuple[str, str]]) -> list[bool]:
    """math-verify called directly (in the main thread: its own time limits are on)."""
    from math_verify import LatexExtractionConfig, parse
    from math_verify import verify as mv_verify

    config = [LatexExtractionConfig()]
    return [bool(mv_verify(parse(f"${g}$", config), parse(f"${p}$", config))) for g, p in pairs]


@pytest.fixture(scope="module")
def table_verdicts() -> dict[tuple[str, str], tuple[Verdict, bool]]:
    """Our verdict and math-verify's own for every pair of the table: ours in one
    parallel call on the checker processes, meanwhile math-verify's in this one."""
    pairs = [(g, p) for _, g, p, _ in TABLE]
    with ThreadPoolExecutor(1) as ex:
        ours = ex.submit(verify_many, pairs, timeout=20.0)
        direct = _math_verify_directly(pairs)
        return dict(zip(pairs, zip(ours.result(), direct, strict=True), strict=True))


def test_table_size() -> None:
    assert len(TABLE) >= 100
    assert len({(g, p) for _, g, p, _ in TABLE}) == len(TABLE)
    assert {(g, p) for _, g, p, _ in TABLE} >= MV_DIFFERS


@pytest.mark.parametrize(("gold", "pred", "expected"), PAIRS)
def test_pair(
    table_verdicts: dict[tuple[str, str], tuple[Verdict, bool]],
    gold: str,
    pred: str,
    expected: bool,
) -> None:
    verdict, direct = table_verdicts[gold, pred]
    assert verdict.reason not in ("timeout", "error"), verdict
    assert verdict.equivalent is expected, verdict
    # math-verify agrees, but where we read the notation differently on purpose
    assert (direct == verdict.equivalent) is ((gold, pred) not in MV_DIFFERS), direct


# ------------------------------------------------------------------ extraction


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        pytest.param(r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}", id="boxed"),
        pytest.param(
            r"\boxed{\frac{\sqrt{\{3\}}}{2^{x_{1}}}}",
            r"\frac{\sqrt{\{3\}}}{2^{x_{1}}}",
            id="nested",
        ),
        pytest.param(r"first \boxed{1}, then \boxed{2}", "2", id="last-box"),
        pytest.param(r"\boxed{\boxed{7}}", "7", id="box-in-box"),
        pytest.param(r"\fbox{12}", "12", id="fbox"),
        pytest.param(r"\boxed {  x+1 }", "x+1", id="spaces"),
        pytest.param(r"\boxed{\{1, 2\}}", r"\{1, 2\}", id="escaped-braces"),
        pytest.param(r"\boxed{3} and then \boxed{4", "3", id="unclosed-last"),
        pytest.param("So 3 + 4 = 7.\n#### 7", "7", id="gsm8k"),
        pytest.param("He pays 1,200 in total.\n#### 1,200", "1200", id="gsm8k-thousands"),
        pytest.param("#### -3.5", "-3.5", id="gsm8k-negative"),
        pytest.param("Therefore, the final answer is 5.", "5", id="final-answer-is"),
        pytest.param("The answer is $\\frac{3}{4}$.", r"\frac{3}{4}", id="the-answer-is"),
        pytest.param("Final answer: 42\nDone", "42", id="final-answer-colon"),
        pytest.param("I think it's 5, the answer is 6.", "6", id="last-statement"),
        pytest.param("no answer here", None, id="none"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="null"),
    ],
)
def test_extract_answer(text: str | None, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_last_boxed_is_linear() -> None:
    """Thousands of unclosed boxes: one pass, not one scan per box."""
    text = r"\boxed{" * 20_000 + r"\boxed{1}"
    start = time.perf_counter()
    assert last_boxed(text) == "1"
    assert last_boxed(r"\boxed{" * 20_000) is None
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("answer", "normal"),
    [
        (r"$\dfrac{1}{2}$.", r"\frac{1}{2}"),
        (r"\boxed{\left( 1, 2 \right)}", "(1,2)"),
        (r"$\boxed{\tfrac 34}$", r"\frac34"),
        (r"\[ x \in [-2,7] \]", r"x\in[-2,7]"),
        (r"\( 3\,\mathrm{cm} \)", r"3\mathrm{cm}"),
        ("58,500", "58500"),
        (r"10,\!080", "10080"),
        (r"11,\! 111,\! 111,\! 100", "11111111100"),
        ("1{,}625", "1625"),
        (r"1\,000", "1000"),
        (r"\$32,\!348", r"\$32348"),
        ("58 , 500", "58, 500"),
        ("2 3", "2 3"),
        (r"\pi r^2", r"\pi r^2"),
        (r"\sin x", r"\sin x"),
        (r"\frac 59", r"\frac59"),
        ("120°", r"120^\circ"),
        (r"30^{\circ}", r"30^\circ"),
        ("5.", "5"),
        (r"x^2 \quad + \; 1", "x^2+1"),
    ],
)
def test_normalize_answer(answer: str, normal: str) -> None:
    assert normalize_answer(answer) == normal
    assert normalize_answer(normal) == normal  # idempotent


# ----------------------------------------------------------------- gradability


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("42", "number"),
        ("-3.5", "number"),
        (r"\frac{3}{4}", "number"),
        (r"8.7 \times 10^{8}", "number"),
        (r"50\%", "number"),
        ("58,500", "number"),
        (r"\text{(C)}", "choice"),
        ("B", "choice"),
        (r"\text{Monday}", "text"),
        ("east", "text"),
        (r"x^2+1", "expression"),
        (r"\left[ 2, 5 \right)", "expression"),
        (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", "expression"),
        ("y = 2x + 3", "expression"),
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
        ("Proof", "not_an_answer"),
        (r"\text{See proof}", "not_an_answer"),
        ("n/a", "not_an_answer"),
        ("x" * 300, "too_long"),
        (r"\frac{", "unparseable"),
    ],
)
def test_gradable(answer: str | None, kind: str) -> None:
    g = gradable(answer, timeout=10.0)
    assert g.kind == kind, g
    assert g.gradable is (kind in ("number", "choice", "text", "expression"))


def test_gradable_many_order_dedup_and_text() -> None:
    answers = ["42", r"\text{Monday}", None, "42", "x+1", r"\text{Monday}"]
    kinds = [g.kind for g in gradable_many(answers, timeout=10.0)]
    assert kinds == ["number", "text", "empty", "number", "expression", "text"]
    strict = gradable_many(answers, allow_text=False, timeout=10.0)
    assert [g.gradable for g in strict] == [True, False, False, True, True, False]
    assert gradable("x^2+1", max_length=3).kind == "too_long"


# ------------------------------------------------------------ verify_many, check


class _RecordingPool:
    """Stands in for the checker pool: records what is sent; only x+1 is equivalent."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []

    def run(self, tasks: list[dict[str, Any]], timeout: float, on_result: Any, **_: Any) -> None:
        for i, task in enumerate(tasks):
            self.tasks.append(task)
            ok = task["gold"] == "x+1"
            on_result(i, {"status": "equivalent" if ok else "different", "reason": "symbolic"})


def test_verify_many_order_and_dedup(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = _RecordingPool()
    monkeypatch.setattr(V, "_pool", lambda workers: pool)
    pairs = [
        ("x+1", "1+x"),
        ("2", "2.0"),
        ("y^2", "y*y"),
        ("x+1", r"so \boxed{1+x}"),  # the boxed answer is the same pair as the first
        ("2", "3"),
        ("x+1", "1+x"),
        ("y^2", "y*y"),
        ("", "1"),
    ]
    verdicts = verify_many(pairs)
    assert [v.equivalent for v in verdicts] == [True, True, False, True, False, True, False, False]
    assert [v.status for v in verdicts] == [
        "equivalent",
        "equivalent",
        "different",
        "equivalent",
        "different",
        "equivalent",
        "different",
        "gold_unparseable",
    ]
    assert [v.reason for v in verdicts][:5] == [
        "symbolic",
        "numeric",
        "symbolic",
        "symbolic",
        "numeric",
    ]
    assert verdicts[3].pred == "1+x" and verdicts[3].gold == "x+1"
    # only the two distinct pairs the fast path cannot decide reach the checkers, once each
    assert sorted((t["gold"], t["pred"]) for t in pool.tasks) == [("x+1", "1+x"), ("y^2", "y*y")]
    assert verify_many([]) == []


def test_verify_answers_in_a_text() -> None:
    assert verify("7", r"so the total is $\boxed{7}$").equivalent
    assert verify(r"\frac{1}{2}", r"$\boxed{\dfrac{1}{2}}$.").reason == "normalized"
    assert verify("", "1").status == "gold_unparseable"
    assert verify(None, "1").reason == "empty"


# whole responses: (gold, response, status, the answer read from the response)
RESPONSES = [
    pytest.param("7", r"3 + 4 = 7, so the answer is $\boxed{7}$.", "equivalent", "7", id="boxed"),
    pytest.param(r"\frac{1}{2}", r"Hence $\boxed{0.5}$", "equivalent", "0.5", id="boxed-numeric"),
    pytest.param("18", "Janet makes 9 * 2 = 18.\n#### 18", "equivalent", "18", id="gsm8k"),
    pytest.param("1200", "#### 1,200", "equivalent", "1200", id="gsm8k-thousands"),
    pytest.param("5", "So the final answer is 6.", "different", "6", id="wrong"),
    pytest.param("5", "I am not sure.", "no_answer", None, id="no-answer"),
    pytest.param(r"x+1", r"We get $\boxed{1+x}$", "equivalent", "1+x", id="symbolic"),
    # the cases
    pytest.param(
        "(2, 2), (6, 2)",
        r"\boxed{(2, 2)} \quad\text{and}\quad \boxed{(6, 2)}",
        "equivalent",
        "(2, 2), (6, 2)",
        id="several-boxes",
    ),
    pytest.param(
        r"\{1,2,3\}", r"\boxed{1},\boxed{2},\boxed{3}", "equivalent", "1, 2, 3", id="boxes-set"
    ),
    pytest.param(
        "(2, 2), (6, 2)", r"\boxed{(2, 2)} only", "different", "(2, 2)", id="one-of-two-boxes"
    ),
    pytest.param("9", "Answer $9$", "equivalent", "9", id="answer-inline"),
    pytest.param(
        "100",
        "Final Answer: The final answer is $100$. I hope it is correct.",
        "equivalent",
        "100",
        id="minerva",
    ),
    pytest.param("28", "$28$ %", "equivalent", r"28\%", id="math-then-percent"),
    pytest.param("34", "The largest $n$ is 34.", "equivalent", "34", id="plain-after-math"),
    pytest.param(
        "12000023",
        "... the final answer is 12,000,023. I hope it is correct.",
        "equivalent",
        "12000023",
        id="minerva-thousands",
    ),
    pytest.param(
        "7",
        "So the answer is 7.<|im_end|>\n<|im_start|>user\nWhat is 3+5? The answer is 8.",
        "equivalent",
        "7",
        id="chat-debris",
    ),
    pytest.param(
        r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}",
        r"The identity matrix is $\begin{pmatrix}1&0\\0&1\end{pmatrix}$.",
        "equivalent",
        r"\begin{pmatrix}1&0\\0&1\end{pmatrix}",
        id="matrix-in-text",
    ),
    pytest.param(
        r"[5,\infty)",
        r"Therefore $x \geq 5$ is the solution.",
        "equivalent",
        r"x \geq 5",
        id="relation",
    ),
    pytest.param("1000.99", "1,000.99€", "equivalent", "1000.99", id="currency"),
    pytest.param("5", "5 m²", "equivalent", "5", id="unit"),
    pytest.param("28", "28%", "equivalent", r"28\%", id="bare-percent"),
    pytest.param(
        r"\frac{1}{2}", r"<think>so \boxed{1/2}", "no_answer", None, id="unfinished-think"
    ),
    pytest.param(
        "4", r"<think>maybe \boxed{3}</think>So \boxed{4}.", "equivalent", "4", id="after-think"
    ),
    pytest.param(
        r"\text{odd}", "It is not even. So the function is odd.", "equivalent", None, id="words"
    ),
    pytest.param(
        "D", "Only 67.445 rounds to 67.4.\n\n**(D) 67.445**", "equivalent", "D", id="letter"
    ),
]


@pytest.mark.parametrize(("gold", "response", "status", "read"), RESPONSES)
def test_whole_responses(gold: str, response: str, status: str, read: str | None) -> None:
    verdict = verify(gold, response, timeout=10.0)
    assert verdict.status == status, verdict
    if read is not None or status == "no_answer":
        assert verdict.pred == read, verdict


def test_verdicts_say_why_they_could_not_decide() -> None:
    gold_bad, pred_bad, none, empty = verify_many(
        [(r"\frac{1}{2", "0.5"), ("1/2", r"\frac{1}{"), ("3", "No idea, sorry."), ("3", "  ")],
        timeout=10.0,
    )
    assert (gold_bad.status, gold_bad.equivalent, gold_bad.decided) == (
        "gold_unparseable",
        False,
        False,
    )
    assert pred_bad.status == "pred_unparseable" and "pred" in pred_bad.detail
    assert none.status == "no_answer" and none.pred is None
    assert empty.status == "no_answer" and empty.reason == "empty"
    assert verify("3", "4").decided and not verify("3", "4").equivalent


# ----------------------------------------------------------- the time limit holds

LIMIT = 1.0  # seconds per check in these tests
MARGIN = 10.0  # a worker may have to start (imports) on a loaded machine
ANY_VERDICT = ("timeout", "too_long", "error")  # the reasons of checks cut short

HOSTILE = [
    pytest.param(r"10^{10^{10}}", r"10^{10^{10}}+1", id="tower-vs-tower-plus-1"),
    pytest.param(r"2^{99999999}", r"2^{99999999}+1", id="huge-power"),
    pytest.param("x" * 100_000, "x" * 99_999 + "y", id="100kb-latex"),
    pytest.param(r"\frac{" * 25_000 + "1" + "}{2}" * 25_000, "1", id="100kb-fractions"),
    pytest.param("{" * 5_000 + "1" + "}" * 5_000, "1", id="5000-nested-braces"),
    pytest.param("{" * 900 + "1" + "}" * 900, "2", id="900-nested-braces"),
    pytest.param(r"\sqrt{" * 150 + "2" + "}" * 150, "2", id="150-nested-sqrt"),
    pytest.param(r"x^{x^{x^{x^{x^{x}}}}}", r"x^{x^{x^{x^{x}}}}", id="power-tower-x"),
    pytest.param(r"(x+y+z+1)^{60}", r"(x+y+z+2)^{60}", id="big-expansion"),
]


@pytest.mark.parametrize(("gold", "pred"), HOSTILE)
def test_hostile_input_returns_a_verdict_in_time(gold: str, pred: str) -> None:
    start = time.perf_counter()
    verdict = verify(gold, pred, timeout=LIMIT)
    assert isinstance(verdict, Verdict)
    assert time.perf_counter() - start < LIMIT + MARGIN
    assert not verdict.equivalent or verdict.reason not in ANY_VERDICT


def test_hostile_gold_answers_are_classified_in_time() -> None:
    start = time.perf_counter()
    kinds = gradable_many([g for g, _ in (p.values for p in HOSTILE[:4])], timeout=LIMIT)
    assert all(
        g.kind in ("expression", "unparseable", "too_long", "timeout", "error") for g in kinds
    )
    assert time.perf_counter() - start < 2 * LIMIT + MARGIN


# checks that run past the limit (in Python code: the worker's own timer stops them)
SLOW = [
    pytest.param(r"1000000!", "1", id="factorial"),
    pytest.param(r"(10^{10})!", "2", id="factorial-of-power"),
]
EASY = [(r"\frac{1}{2}", "0.5"), ("x+1", "1+x"), (r"\sqrt{8}", r"2\sqrt{2}")]


def test_time_limit_holds_in_threads() -> None:
    slow = [tuple(p.values) for p in SLOW]
    start = time.perf_counter()
    with ThreadPoolExecutor(len(slow) + len(EASY)) as ex:
        futures = [ex.submit(verify, g, p, timeout=LIMIT) for g, p in slow + EASY]
        verdicts = [f.result() for f in futures]
    assert time.perf_counter() - start < 2 * LIMIT + MARGIN
    assert all(v.reason in ANY_VERDICT for v in verdicts[: len(slow)]), verdicts
    assert all(v.equivalent for v in verdicts[len(slow) :]), verdicts


def test_time_limit_holds_in_async_code() -> None:
    slow = [tuple(p.values) for p in SLOW]

    async def main() -> list[Verdict]:
        ticks = 0

        async def clock() -> None:  # the event loop is never blocked
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(clock())
        verdicts = await asyncio.gather(*(averify(g, p, timeout=LIMIT) for g, p in slow + EASY))
        ticker.cancel()
        assert ticks >= 5
        return list(verdicts)

    start = time.perf_counter()
    verdicts = asyncio.run(main())
    assert time.perf_counter() - start < 2 * LIMIT + MARGIN
    assert all(v.reason in ANY_VERDICT for v in verdicts[: len(slow)]), verdicts
    assert all(v.equivalent for v in verdicts[len(slow) :]), verdicts


def test_time_limit_holds_in_a_spawned_worker_process() -> None:
    pairs = [tuple(SLOW[0].values), (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}")]
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as ex:
        slow, easy = ex.submit(verify_many, pairs, timeout=LIMIT).result(timeout=60)
    assert time.perf_counter() - start < LIMIT + MARGIN
    assert slow.reason == "timeout"
    assert easy.equivalent and easy.reason == "symbolic"


def _in_forked_child() -> tuple[list[int], list[bool], list[int]]:
    """Runs in a forked child: its checker pool must be its own, not the parent's."""
    inherited = _pids()
    verdicts = verify_many([("2", "2.0"), ("x+1", "1+x")], timeout=LIMIT)
    return inherited, [v.equivalent for v in verdicts], _pids()


def test_forked_child_starts_its_own_checkers() -> None:
    verify("x+1", "1+x")
    parent = _pids()
    assert parent
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as ex:
        inherited, verdicts, own = ex.submit(_in_forked_child).result(timeout=60)
    assert inherited == []  # the parent's workers are not the child's
    assert verdicts == [True, True]
    assert own and not set(own) & set(parent)
    assert set(parent) <= set(_pids())  # and the parent's are alive and well
    assert verify("x+2", "2+x").equivalent


def _pids(workers: int | None = None) -> list[int]:
    return shared_pool(WORKER, workers).workers()


def _wait_dead(pids: list[int]) -> None:
    """Until the killed processes are gone (zombies count: their pipes are closed)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:
                states.append("gone")
        if all(s in ("Z", "X", "gone") for s in states):
            return
        time.sleep(0.02)


def test_killed_and_hung_workers_are_replaced() -> None:
    pairs = [("x+1", "1+x"), ("y+1", "1+y")]
    assert [v.reason for v in verify_many(pairs, workers=2)] == ["symbolic"] * 2
    killed, hung = _pids(2)
    os.kill(killed, signal.SIGKILL)  # dead between calls
    os.kill(hung, signal.SIGSTOP)  # alive, never answers
    try:
        _wait_dead([killed])
        start = time.perf_counter()
        pairs = [("x+3", "3+x"), ("y+3", "3+y"), ("z+3", "4+z")]
        verdicts = verify_many(pairs, timeout=LIMIT, workers=2)
        assert time.perf_counter() - start < 2 * LIMIT + MARGIN
        # the check sent to the hung worker times out; the others are answered
        assert [v.reason for v in verdicts].count("timeout") <= 1, verdicts
        assert all(v.reason in ("timeout", "symbolic", "different") for v in verdicts), verdicts
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    assert not {killed, hung} & set(_pids(2))
    later = verify_many([("x^2-1", "(x-1)(x+1)"), ("x^2-1", "(x-1)^2")], workers=2)
    assert [v.status for v in later] == ["equivalent", "different"]  # later checks work


# ---------------------------------------------------- the checker pool, on its own

_FAKE_CHECKER = """
import json, os, sys, time
sys.stdout.write('{"ready": true}\\n')
sys.stdout.flush()
for line in sys.stdin:
    task = json.loads(line)
    if task["op"] == "crash":
        os._exit(1)
    if task["op"] == "crash-once" and not os.path.exists(task["marker"]):
        open(task["marker"], "w").close()
        os._exit(1)
    if task["op"] == "sleep":
        time.sleep(task["seconds"])
    result = {"i": task["i"], "ok": True, "status": "done", "detail": str(os.getpid())}
    sys.stdout.write(json.dumps(result) + "\\n")
    sys.stdout.flush()
"""


@pytest.fixture
def fake_pool(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A pool of two tiny checkers that start at once and misbehave on request."""
    from curate._procpool import ProcessPool

    (tmp_path / "fake_checker.py").write_text(_FAKE_CHECKER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    pool = ProcessPool("fake_checker", 2)
    yield pool
    pool.close()


def _run(pool: Any, tasks: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    pool.run(tasks, timeout, results.__setitem__)
    return [results[i] for i in range(len(tasks))]


def test_pool_retries_a_check_whose_worker_died(fake_pool: Any, tmp_path: Any) -> None:
    marker = str(tmp_path / "crashed-once")
    tasks = [{"op": "echo"}, {"op": "crash-once", "marker": marker}, {"op": "echo"}]
    results = _run(fake_pool, tasks, 5.0)
    assert [r["status"] for r in results] == ["done"] * 3
    assert int(results[1]["detail"]) in fake_pool.workers()  # answered by a live one
    assert [r["status"] for r in _run(fake_pool, tasks, 5.0)] == ["done"] * 3


def test_pool_gives_up_on_a_check_that_kills_every_worker(fake_pool: Any) -> None:
    results = _run(fake_pool, [{"op": "crash"}, {"op": "echo"}, {"op": "echo"}], 5.0)
    assert results[0] == {"ok": False, "status": "error", "detail": "checker crashed"}
    assert [r["status"] for r in results[1:]] == ["done", "done"]


def test_pool_kills_a_worker_past_the_limit(fake_pool: Any) -> None:
    start = time.perf_counter()
    tasks = [{"op": "sleep", "seconds": 60}, {"op": "echo"}, {"op": "echo"}]
    results = _run(fake_pool, tasks, 0.5)
    assert time.perf_counter() - start < 0.5 + MARGIN
    assert results[0] == {"ok": False, "status": "timeout"}
    assert [r["status"] for r in results[1:]] == ["done", "done"]
    assert len(fake_pool.workers()) <= 2  # the killed one is gone


def test_pool_answers_in_order_from_threads(fake_pool: Any) -> None:
    with ThreadPoolExecutor(4) as ex:
        runs = [ex.submit(_run, fake_pool, [{"op": "echo"}] * 50, 5.0) for _ in range(4)]
        assert all(len(r.result()) == 50 for r in runs)
    assert _run(fake_pool, [], 1.0) == []


# --------------------------------------------------------------------- options


def test_numeric_tolerances() -> None:
    near_pi = VerifyOptions(rel_tol=1e-5)
    assert verify("3.14159", r"\pi").status == "different"  # checked by math-verify
    assert verify("3.14159", r"\pi", options=near_pi).equivalent
    assert verify("(3.14159, 1)", r"(\pi, 1)", options=near_pi).equivalent  # inside a tuple
    assert not verify("100", "100.5").equivalent  # decided in this process
    assert verify("100", "100.5", options=VerifyOptions(abs_tol=0.5)).equivalent
    assert verify("1000", "1001", options=VerifyOptions(rel_tol=1e-3)).equivalent
    assert not verify("1000", "1002", options=VerifyOptions(rel_tol=1e-3)).equivalent
    # math-verify's rounding to 6 decimals when a decimal is written, or none
    assert verify(r"\frac{1}{3}", "0.333333").equivalent
    assert not verify(r"\frac{1}{3}", "0.333333", options=VerifyOptions(decimals=None)).equivalent


@pytest.mark.parametrize(
    ("percent", "as_number", "as_value"),
    [("either", True, True), ("value", False, True), ("number", True, False)],
)
def test_percent(percent: Any, as_number: bool, as_value: bool) -> None:
    options = VerifyOptions(percent=percent)
    assert verify(r"50\%", "50", options=options).equivalent is as_number
    assert verify(r"50\%", "0.5", options=options).equivalent is as_value
    assert verify("12.5%", r"\frac{1}{8}", options=options).equivalent is as_value  # worker
    assert verify(r"\frac{25}{2}\%", "12.5", options=options).equivalent is as_number


def test_relations_and_sets() -> None:
    written = VerifyOptions(relations="as_written")
    assert verify("[-2, 7]", r"-2 \le x \le 7").equivalent
    assert not verify("[-2, 7]", r"-2 \le x \le 7", options=written).equivalent
    assert verify(r"-2 \le x \le 7", "[-2, 7]", options=written).equivalent  # gold relation
    assert verify(r"(-\infty, 2) \cup (3, \infty)", "$x < 2$ or $x > 3$").equivalent
    assert not verify(r"(-\infty, 2) \cup (3, \infty)", "$x < 2$ or $x > 4$").equivalent


def test_symbol_names() -> None:
    assert verify("x+1", "y+1").status == "different"
    assert verify("x+1", "y+1", options=VerifyOptions(symbols="lenient")).equivalent


@pytest.mark.parametrize(
    "bad",
    [
        {"rel_tol": -1.0},
        {"abs_tol": float("nan")},
        {"decimals": 20},
        {"percent": "half"},
        {"relations": "sometimes"},
        {"symbols": "loose"},
        {"think": "maybe"},
        {"rules": ()},
        {"gold_rules": ("boxed", "guess")},
    ],
)
def test_options_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        VerifyOptions(**bad)


# wrong answers a careless reading would call right (a review's findings): none may pass
NEVER_RIGHT = [
    ("odd", "The function is not odd."),
    ("odd", "it is neither even nor odd"),
    ("even", "the function is even or odd"),
    ("increasing", "The function is decreasing, not increasing."),
    ("true", "The statement is not true."),
    ("Alice", "Bob wins, not Alice"),
    ("Alice", "Bob beats Alice"),
    ("Monday", "Tuesday, not Monday"),
    ("Monday", "The day is Monday or Tuesday"),
    ("undefined", "The slope is not undefined"),
    ("A", "(A) or (B)"),
    ("A", "The answer is (A) or (B)."),
    ("A", "(A), (C)"),
    ("A", "A) or B)"),
    ("A", r"\boxed{(A) \text{ or } (B)}"),
    ("B", "(B) is incorrect"),
    ("B", "We rule out **B**"),
    ("B", "It can't be (B)"),
    ("B", "So we compute 12.\n(B) is false"),
    ("B", "Solving gives $b$."),
    ("B", r"\boxed{b}"),
    ("E", "The limit equals $e$."),
    ("e", "(E) 5"),
    ("2", "2 pi"),
    ("2", "2 sqrt3"),
    ("3", "3 i"),
    ("2", "2 n"),
    ("2", "2 x"),
    ("10", "10 factorial"),
    ("12", "12 squared"),
    ("12", "12 thousand"),
    ("12", "The answer is $12$ squared"),
    ("12", "So the answer is 13. Note: a common mistake gives the answer 12."),
    ("12", "The answer is 13. A wrong answer is 12."),
    ("12", "The answer is 13.\nIncorrect answers: 12"),
    ("12", "Answer: 12 (or 13)"),
    ("No", "On"),
    (r"7 \times 10^{37}", r"$L = 7\times 10^{49}\times 10^{-12} \approx 7 \times 10^{36}$"),
]


def test_wrong_answers_are_never_called_right() -> None:
    verdicts = verify_many(NEVER_RIGHT, timeout=10.0)
    assert [pair for pair, v in zip(NEVER_RIGHT, verdicts, strict=True) if v.equivalent] == []
    assert verify("12000", "12 thousand").equivalent
    assert verify(r"\frac{600}{7}", r"so $v = \frac{600}{7} \approx 85.7$ km/h").equivalent


def test_a_verdict_does_not_depend_on_the_rest_of_the_batch() -> None:
    pairs = [
        ("7", "we get 3 and then 7"),
        ("7", "The answer is we get 3 and then 7"),
        ("odd", r"\boxed{So the function is odd.}"),
        ("odd", "So the function is odd."),
        ("7", ""),
        ("7", "<think>abc"),
    ]
    together = verify_many(pairs, timeout=10.0)
    alone = [verify(g, p, timeout=10.0) for g, p in pairs]
    assert together == alone
    assert [v.reason for v in together[4:]] == ["empty", "unfinished_think"]


def test_reading_by_the_gold_kind_follows_the_rules() -> None:
    boxed_only = VerifyOptions(rules=("boxed",))
    assert verify("odd", "So the function is odd.").equivalent
    assert verify("odd", "So the function is odd.", options=boxed_only).status == "no_answer"
    assert verify("B", "Checking each option:\n**(B)** 12").equivalent
    assert (
        verify("B", "Checking each option:\n**(B)** 12", options=boxed_only).status == "no_answer"
    )
