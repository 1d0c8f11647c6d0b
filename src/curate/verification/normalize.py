r"""Normalization of answers, and the plain numbers and choice letters a grader reads
without a parser. Only changes that never alter an answer's value.

>>> normalize_answer(r"$\dfrac{1}{2}$.")
'\\frac{1}{2}'
>>> number(r"62.5\%")
Number(value=Fraction(125, 2), decimal=True, percent=True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from curate.verification.boxes import braced

_UNWRAP = re.compile(r"^\\(?:boxed|fbox)\s*\{(.*)\}$", re.DOTALL)
_DELIMS = re.compile(r"^(?:\$+(.*?)\$+|\\\((.*)\\\)|\\\[(.*)\\\])$", re.DOTALL)
_VISUAL = re.compile(
    r"\\(?:left|right|displaystyle|textstyle|!|,|;|:|\s)(?![a-zA-Z])|\\(?:[,;:!]|quad|qquad)"
)
_FRAC = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_DEGREES = re.compile(r"\^\{\\circ\}|°")
# 12,345 / 12{,}345 / 12,\!345 / 12\,345: digit groups of a single number (but 0,125
# is a decimal comma to math-verify)
_GROUPED = re.compile(
    r"(\\\$\s*)?(-?[1-9]\d{0,2})((?:(?:,\\!\s*|,|\{,\}|\\,\s*)\d{3})+)(\.\d+)?", re.DOTALL
)
_SEPARATOR = re.compile(r",\\!\s*|,|\{,\}|\\,\s*")
# 12, 345: a list of two numbers that would read as one without its space
_SPACED_LIST = re.compile(r"(?<![\d.])\d{1,3}(?:\s*,\s*\d{3})+(?!\d)")
_COMMA = re.compile(r"\s*,\s*")
_SPACE_AFTER_COMMAND = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])")
_SPACE_IN_WORDS = re.compile(r"(?<=\d)\s+(?=\d)|(?<=[A-Za-z])\s+(?=[A-Za-z])")
_WS = re.compile(r"\s+")


def _unwrap(answer: str) -> str:
    r"""Strip whitespace, a trailing period, ``$..$``/``\(..\)``/``\[..\]`` and a whole
    ``\boxed{..}``."""
    s = answer.strip().removesuffix(".").strip()
    for _ in range(3):  # nested wrappers: "$\boxed{..}$"
        before = s
        m = _DELIMS.match(s)
        if m:
            s = next(g for g in m.groups() if g is not None).strip()
        m = _UNWRAP.match(s)
        if m and braced(s, s.index("{")) == m.group(1):
            s = m.group(1).strip()
        if s == before:
            break
    return s


_INNER_DOLLAR = re.compile(r"(?<!\\)\$")
_PERCENT_SIGN = re.compile(r"(?<!\\)%")  # a comment sign to LaTeX
_PLUS_MINUS = re.compile(r"\\pm(?![A-Za-z])|±")  # not \pmod, \pmb
# "x < 2 or x > 3": a joining word between formulas, as math-verify's parser expects it
_WORD_JOIN = re.compile(r"(?<![\\{a-zA-Z])\s+(or|and)\s+(?![a-zA-Z]*\})")
_GROUP_MARK = re.compile(r"(?<=\d)(?:\{,\}|,\\!\s*)(?=\d{3}(?!\d))")
_SET_BUILDER = re.compile(r"\\\{\s*[a-zA-Z]\s*(?:\||\\mid|:)\s*(.+?)\s*\\\}", re.DOTALL)


def math_text(answer: str) -> str:
    r"""The answer as one math-mode string, for math-verify (which wraps it in ``$..$``).

    An answer that mixes words and math (``$x=2$ or $x=3$``, ``$\max$ at $x=2$,
    min at $x=4$``) is read whole, its inner ``$`` dropped: math-verify, given
    the dollars, would read only the last formula (``x=4``). Also, for its parser:
    a ``%`` is ``\%`` (not a comment), ``°`` is ``^\circ``, the digit groups ``10{,}080``
    and ``10,\!080`` are one number wherever they stand, and a set in set-builder
    notation is its condition (``\{x \mid -2 \le x < 1\}`` is ``-2 \le x < 1``, which
    compares with ``[-2, 1)``), and one ``\pm`` makes two answers (``\frac{1 \pm \sqrt5}{2}``
    is ``\frac{1 + \sqrt5}{2}, \frac{1 - \sqrt5}{2}``).

    >>> math_text(r"$5040 \times 2 = 10{,}080$")
    '5040 \\times 2 = 10080'
    >>> math_text(r"$x<2$ or $x > 3$")
    'x<2\\text{ or }x > 3'
    """
    s = _PERCENT_SIGN.sub(r"\\%", _INNER_DOLLAR.sub(" ", _unwrap(answer)))
    s = _DEGREES.sub(r"^\\circ", _GROUP_MARK.sub("", s))
    s = _WORD_JOIN.sub(r"\\text{ \1 }", s.strip())
    if m := _SET_BUILDER.fullmatch(s):
        s = m.group(1)
    if len(_PLUS_MINUS.findall(s)) == 1 and "," not in s:  # two answers in one
        s = f"{_PLUS_MINUS.sub('+', s)}, {_PLUS_MINUS.sub('-', s)}"
    return s


def _keep_list_spaces(m: re.Match[str]) -> str:
    return _COMMA.sub(",\x00", m.group()) if _WS.search(m.group()) else m.group()


def normalize_answer(answer: str) -> str:
    r"""Normalize an answer for comparison; only changes that never alter its value.

    Unwraps ``$..$`` and a whole ``\boxed{..}``, drops ``\left``/``\right``, LaTeX
    spacing and whitespace, maps ``\dfrac``/``\tfrac`` to ``\frac`` and ``°`` or
    ``^{\circ}`` to ``^\circ``, joins the digit groups of one number (``12,345``,
    ``12{,}345``, ``12,\!345``, ``12\,345``) and drops a trailing period.

    Whitespace that separates tokens is kept as one space: between digits
    (``2 3`` is not ``23``), between letters (``no solution``), after a command
    name before a letter (``\pi r`` is not ``\pir``), and in a list of numbers
    that would otherwise read as one number (``12, 345`` is two numbers,
    ``12,345`` is one).

    >>> normalize_answer(r"$\dfrac{1}{2}$.")
    '\\frac{1}{2}'
    >>> normalize_answer(r"\boxed{\left( 1, 2 \right)}")
    '(1,2)'
    >>> normalize_answer(r"\$32,\!348"), normalize_answer("12, 345")
    ('\\$32348', '12, 345')
    """
    s = _unwrap(answer)
    if m := _GROUPED.fullmatch(s):
        s = (m.group(1) or "").strip() + m.group(2) + _SEPARATOR.sub("", m.group(3))
        return s + (m.group(4) or "")
    s = _DEGREES.sub(r"^\\circ", _FRAC.sub(r"\\frac", s))
    s = _VISUAL.sub(" ", s)
    s = _SPACED_LIST.sub(_keep_list_spaces, s.replace("\x00", ""))
    s = _SPACE_AFTER_COMMAND.sub("\\1\x00", s)
    s = _SPACE_IN_WORDS.sub("\x00", s)
    s = _WS.sub("", s).replace("\x00", " ")
    return s[:-1] if s.endswith(".") and not s.endswith("\\.") else s


_INT = re.compile(r"-?\d+")
_DEC = re.compile(r"-?(?:\d+\.\d*|\.\d+)")
_FRACTION = re.compile(r"(-?)\\frac(?:\{(\d+)\}|(\d))(?:\{(\d+)\}|(\d))")
_SLASH = re.compile(r"(-?\d+)/(\d+)")
# 8.7\times10^{8}, 7\cdot10^{-3}, 10^{-3}, 4.4e7, 3.3E-10
_SCIENTIFIC = re.compile(
    r"(?:(-?(?:\d+\.?\d*|\.\d+))(?:\\times|\\cdot))?10\^(?:\{(-?\d{1,3})\}|(\d))"
    r"|(-?(?:\d+\.?\d*|\.\d+))[eE]([-+]?\d{1,3})"
)
_UNITLESS = re.compile(r"^\\\$|\^\\circ$")
_PERCENT = re.compile(r"\\?%$")
# a choice letter: a capital, or any letter in parentheses or \text{} (a bare "b" or "e"
# is a variable or Euler's number, not choice B or E)
_CHOICE = re.compile(
    r"(?:\\text(?:bf)?\{|\\mathrm\{)\(?([A-Ea-e])\)?\}|\(([A-Ea-e])\)|([A-E])"
    r"|(?:\\text(?:bf)?\{|\\mathrm\{)\(([A-E])\)\}"
)
_OTHER_CHOICE = re.compile(r"\(?\b[A-E]\b\)?[.)]?\s*(?:$|\\|,)|\b(?:or|and)\b|\([A-E]\)")
# "(D) 12", "\textbf{(A) }3", "B. 7": a choice letter before the value it names
_CHOICE_PREFIX = re.compile(
    r"^(?:\\text(?:bf)?\{\s*|\\mathrm\{\s*)?(?:\(([A-E])\)|([A-E])[.):])\s*\}?\s*(?=\S)(.*)$",
    re.DOTALL,
)
TEXT_WRAP = re.compile(r"^\\(?:text|textbf|textit|mathrm|mbox|mathbf)\s*\{(.*)\}$", re.DOTALL)
WORDS = re.compile(r"[A-Za-z]+(?:[ '\-][A-Za-z]+)*")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Number:
    """A plain number: its exact value, whether it was written with a decimal point
    (then compared to `VerifyOptions.decimals` places, as math-verify does), and whether
    it had a ``%``."""

    value: Fraction
    decimal: bool
    percent: bool


def number(s: str) -> Number | None:
    r"""Plain integers, decimals, simple fractions and scientific notation, optionally
    with ``\$`` before, or ``^\circ`` or ``\%`` after (of a normalized answer)."""
    if len(s) > 40:
        return None
    s = _UNITLESS.sub("", s)
    percent = bool(_PERCENT.search(s))
    if percent:
        s = _PERCENT.sub("", s)
    if _INT.fullmatch(s):
        return Number(Fraction(int(s)), False, percent)
    if _DEC.fullmatch(s):
        return Number(Fraction(s), True, percent)
    m = _FRACTION.fullmatch(s)
    if m:
        num, den = int(m.group(2) or m.group(3)), int(m.group(4) or m.group(5))
        if den:
            return Number((-1 if m.group(1) else 1) * Fraction(num, den), False, percent)
        return None
    m = _SLASH.fullmatch(s)
    if m:
        den = int(m.group(2))
        return Number(Fraction(int(m.group(1)), den), False, percent) if den else None
    m = _SCIENTIFIC.fullmatch(s)
    if m:
        mantissa = m.group(1) or m.group(4) or "1"
        exponent = int(m.group(2) or m.group(3) or m.group(5))
        value = Fraction(mantissa) * Fraction(10) ** exponent
        return Number(value, "." in mantissa, percent)
    return None


def choice(s: str) -> str | None:
    r"""The choice letter an answer is (of a normalized answer), or None.

    >>> choice(r"\text{(C)}"), choice("B"), choice("(b)"), choice("b")
    ('C', 'B', 'B', None)
    """
    m = _CHOICE.fullmatch(s)
    return next(g for g in m.groups() if g).upper() if m else None


def resolution(s: str) -> Fraction | None:
    r"""The place value of the last digit a plain number is written with (of a normalized
    answer): 0.1 for ``85.7``, ``10^{36}`` for ``7\times10^{36}``; None if not a number.

    >>> resolution("85.7"), resolution(r"7\times10^{36}") == 10**36, resolution("x")
    (Fraction(1, 10), True, None)
    """
    s = _PERCENT.sub("", _UNITLESS.sub("", s))
    if _INT.fullmatch(s) or _DEC.fullmatch(s):
        mantissa, exponent = s, 0
    elif m := _SCIENTIFIC.fullmatch(s):
        mantissa = m.group(1) or m.group(4) or "1"
        exponent = int(m.group(2) or m.group(3) or m.group(5))
    else:
        return None
    decimals = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
    return Fraction(10) ** (exponent - decimals)


def choice_prefix(s: str) -> tuple[str, str] | None:
    r"""A choice letter that starts an answer and the value after it: ``(D) 12`` is
    ("D", "12"); None when the answer does not start with a lettered choice.

    >>> choice_prefix(r"\textbf{(A) }3")
    ('A', '3')
    """
    m = _CHOICE_PREFIX.match(s.strip())
    if m is None:
        return None
    rest = m.group(3).strip().rstrip("}").strip()
    if _OTHER_CHOICE.search(rest):  # "(A) or (B)", "(A), (C)": a hedge, not a choice
        return None
    return (m.group(1) or m.group(2)), rest


def unwrap_text(s: str) -> str:
    r"""``s`` without the ``\text{}``-like wrappers around it (``\textbf{\text{x}}`` is x)."""
    s = s.strip().strip("$").strip()
    while m := TEXT_WRAP.match(s):
        s = m.group(1).strip()
    return s


def words(answer: str) -> str | None:
    r"""The words of an answer made only of words, casefolded, without a leading article
    or a trailing period (``\text{ An ellipse. }`` is "ellipse"); None otherwise.

    >>> words(r"\text{No Solution}"), words("x+1")
    ('no solution', None)
    """
    s = unwrap_text(answer).rstrip(".").strip().replace("*", "")
    # a short bare run of letters is a product of variables ("ab"), not a word; yes and
    # no are words
    short = len(s) < 3 and s == answer.strip() and s.casefold() not in ("no", "yes")
    if not WORDS.fullmatch(s) or short:
        return None
    return " ".join(_ARTICLE.sub("", s).casefold().split())
