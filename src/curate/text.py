"""Math-aware text normalization and hashing, shared by every stage that compares texts.

`normalize_text` maps the many ways one problem is written (LaTeX spacing,
``\\dfrac`` vs ``\\frac``, ``$`` delimiters, unicode look-alikes, case, spacing
around symbols) to one string, and `text_hash` hashes that string. Two rows
with the same ``text_hash`` are the same problem as far as exact dedup goes.
Tokens and shingles for near-duplicate detection build on these in `curate.shingles`.

>>> normalize_text(r"Find  $\\dfrac{1}{2} + x$ .")
'find \\\\frac{1}{2}+x.'
>>> text_hash("Find $x$.") == text_hash("find  x .")
True
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# LaTeX that changes only how a formula looks, never what it says: command -> replacement.
_SAME = {
    "le": "\\le",
    "leq": "\\le",
    "leqslant": "\\le",
    "ge": "\\ge",
    "geq": "\\ge",
    "geqslant": "\\ge",
    "ne": "\\ne",
    "neq": "\\ne",
    "cdot": "\\cdot",
    "times": "\\cdot",
    "dfrac": "\\frac",
    "tfrac": "\\frac",
    "dbinom": "\\binom",
    "tbinom": "\\binom",
}
_DROP = "displaystyle textstyle scriptstyle left right bigl bigr Bigl Bigr big Big biggl biggr"
_SPACE_CMDS = ("quad", "qquad", ",", ";", ":", "!", " ", "(", ")", "[", "]")  # \( \) \[ \] too
LATEX_COMMANDS: dict[str, str] = {
    **_SAME,
    **dict.fromkeys(_DROP.split(), ""),
    **dict.fromkeys(_SPACE_CMDS, " "),
}
"""What `normalize_text` does to each LaTeX command (name without the backslash): the command
that replaces it (``"dfrac"`` -> ``"\\frac"``), ``""`` (dropped: ``\\left``, ``\\displaystyle``) or
``" "`` (spacing: ``\\quad``, ``\\,``, and the math delimiters ``\\(`` ``\\)`` ``\\[`` ``\\]``).
`curate.shingles` reads it to tokenize the same way."""

# one pass over the commands above; $ delimiters go by str.replace, which is faster
_LATEX = re.compile(
    r"\\("
    + "|".join(sorted((c for c in LATEX_COMMANDS if c.isalpha()), key=len, reverse=True))
    + r")(?![a-zA-Z])|\\([,;:! ()\[\]])"
)

QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
    }
)
"""`str.translate` table of the Unicode look-alikes `normalize_text` unifies after NFKC: curly
quotes, dashes and the minus sign become ASCII, a no-break space a space."""
# spaces next to anything that is not a letter, digit or backslash carry no meaning
_SPACE_AROUND_SYMBOL = re.compile(r" (?=[^\w\s\\])|(?<=[^\w\s\\]) ")


def _latex(match: re.Match[str]) -> str:
    return LATEX_COMMANDS[match.group(1) or match.group(2)]


def normalize_text(text: str) -> str:
    """Normalize a problem text for comparison (not for display).

    Unicode NFKC, look-alike quotes and dashes unified, visual-only LaTeX
    removed, math delimiters dropped, case folded, whitespace collapsed, and
    spaces around symbols removed.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(QUOTES)
    text = " ".join(_LATEX.sub(_latex, text.replace("$", " ")).split()).casefold()
    return _SPACE_AROUND_SYMBOL.sub("", text)


def text_hash(text: str) -> str:
    """Hex digest (128-bit BLAKE2b) of `normalize_text` of ``text``."""
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).hexdigest()
