r"""Numbers written in plain text: digit groups, a currency sign, a percent, a unit, a
magnitude word and numbers in words.

>>> plain_answer("1,000.99€"), plain_answer("5 m²"), plain_answer("28 percent")
('1000.99', '5', '28\\%')
>>> plain_answer("12 thousand"), plain_answer("The answer is thirteen"[14:])
('12000', '13')
>>> plain_answer("2 pi"), plain_answer("-2x")  # math after a number is not a unit
('2 pi', '-2x')
"""

from __future__ import annotations

import re
from fractions import Fraction

_CURRENCY = "$€£¥₹₽₩"
_MONEY = rf"(?:\\\$|[{re.escape(_CURRENCY)}])"
_DIGITS = r"(?P<n>[-−]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:/\d+)?|\.\d+))"
PERCENT = r"(?:\\?%|percent\b|per\s*cent\b)"
"""A percent sign or word after a number (a pattern, case-insensitive)."""
# a number inside text (whitespace is only taken after a required token, so long runs of
# spaces are scanned once, not once per space)
NUMBER = re.compile(
    rf"(?<![\w.,^_/{{}}])(?:{_MONEY}[ \t]*)?{_DIGITS}(?![\w]*\()(?:[ \t]*{_MONEY})?"
    rf"(?P<p>[ \t]*{PERCENT})?",
    re.IGNORECASE,
)
# a whole answer that is a number with what may surround it
_PLAIN_NUMBER = re.compile(
    rf"(?:{_MONEY}\s*)?{_DIGITS}\s*"
    rf"(?:{_MONEY}|(?P<p>{PERCENT})"
    # a unit: after a space (2x is not 2), or a sign that cannot be a variable (30°)
    r"|(?P<u>(?:(?<=\s)[A-Za-zµμΩ]|[°℃℉])[A-Za-zµμΩ°²³/^.\d]*(?:\s+[A-Za-z][A-Za-z²³/^.\d]*){0,2})"
    r")?",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[A-Za-z]+")
# words after a number that are math, not a unit ("2 pi", "12 squared", "3 i", "2 n")
_NOT_UNITS = frozenset(
    ("pi", "e", "i", "sqrt", "root", "roots", "sin", "cos", "tan", "log", "ln", "exp",
     "factorial", "squared", "cubed", "times", "plus", "minus", "over", "divided", "to",
     "and", "or", "x", "y", "z", "n", "k", "t", "a", "b", "c", "d", "r", "p", "q", "u", "v")
)  # fmt: skip
_MAGNITUDES = {"dozen": 12, "hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_word(answer: str) -> str | None:
    """A whole number written in words, 0-99 ("thirteen", "forty-two"), as digits."""
    word = answer.lower().rstrip(".").strip()
    if word in _ONES:
        return str(_ONES.index(word))
    tens, _, unit = word.replace(" ", "-").partition("-")
    if tens in _TENS and (not unit or unit in _ONES[1:10]):
        return str(20 + 10 * _TENS.index(tens) + (_ONES.index(unit) if unit else 0))
    return None


def number_text(m: re.Match[str]) -> str:
    """A matched number as an answer: a unicode minus is "-", digit groups are joined,
    a percent stays."""
    number = m.group("n").replace("−", "-").replace(",", "")
    return number + "\\%" if m.group("p") else number


def is_unit(text: str) -> bool:
    """Whether ``text`` (what follows a number) is only a unit or punctuation, not math."""
    words = [w.lower() for w in _WORDS.findall(text)]
    return len(words) <= 3 and not _NOT_UNITS.intersection(words) and not re.search(r"\d", text)


def plain_answer(answer: str) -> str:
    """A plain-text answer without currency and unit: "1,000.99€" is 1000.99, "28
    percent" is 28\\%, "Area = 15 cm²" is 15, "12 thousand" is 12000; anything that is not
    a number with a unit stays as it is."""
    answer = answer.strip()
    if (n := number_word(answer)) is not None:
        return n
    m = _PLAIN_NUMBER.fullmatch(answer)
    if m is None and "=" in answer:  # "Area = 1/2 · 10 · 3 = 15 cm²": the unit says it all
        m = _PLAIN_NUMBER.fullmatch(answer.rsplit("=", 1)[1].strip())
        m = m if m is not None and (m.group("u") or m.group("p")) else None
    if m is None:
        return answer
    unit = (m.group("u") or "").split()
    if unit and unit[0].lower() in _MAGNITUDES:
        value = Fraction(m.group("n").replace("−", "-").replace(",", ""))
        value *= _MAGNITUDES[unit[0].lower()]
        return str(value.numerator) if value.denominator == 1 else answer
    if unit and not is_unit(" ".join(unit)):
        return answer
    return number_text(m)
