"""Math-aware text normalization and hashing, shared by every stage that compares texts.

`normalize_text` maps the many ways one problem is written (LaTeX spacing,
``\\dfrac`` vs ``\\frac``, ``$`` delimiters, unicode look-alikes, case, spacing
around symbols) to one string, and `text_hash` hashes that string. Two rows
with the same ``text_hash`` are the same problem as far as exact dedup goes.

>>> normalize_text(r"Find  $\\dfrac{1}{2} + x$ .")
'find \\\\frac{1}{2}+x.'
>>> text_hash("Find $x$.") == text_hash("find  x .")
True
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# LaTeX commands that change only how a formula looks, never what it says.
_LATEX_SYNONYMS = [
    (re.compile(r"\\[dt]frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\[dt]binom(?![a-zA-Z])"), r"\\binom"),
    (re.compile(r"\\(?:displaystyle|textstyle|scriptstyle)(?![a-zA-Z])"), ""),
    (re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|biggl|biggr)(?![a-zA-Z])"), ""),
    (re.compile(r"\\(?:le|leq|leqslant)(?![a-zA-Z])"), r"\\le"),
    (re.compile(r"\\(?:ge|geq|geqslant)(?![a-zA-Z])"), r"\\ge"),
    (re.compile(r"\\(?:ne|neq)(?![a-zA-Z])"), r"\\ne"),
    (re.compile(r"\\(?:cdot|times)(?![a-zA-Z])"), r"\\cdot"),
    # spacing commands: \, \; \: \! \quad \qquad and "\ "
    (re.compile(r"\\(?:[,;:! ]|quad(?![a-zA-Z])|qquad(?![a-zA-Z]))"), " "),
    # math delimiters carry no content: $, $$, \( \), \[ \]
    (re.compile(r"\$+|\\[()\[\]]"), " "),
]

_QUOTES = str.maketrans(
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
_SPACE = re.compile(r"\s+")
# spaces next to anything that is not a letter or digit carry no meaning
_SPACE_AROUND_SYMBOL = re.compile(r" ?([^\w\s\\]) ?")


def normalize_text(text: str) -> str:
    """Normalize a problem text for comparison (not for display).

    Unicode NFKC, look-alike quotes and dashes unified, visual-only LaTeX
    removed, math delimiters dropped, case folded, whitespace collapsed, and
    spaces around symbols removed.
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    for pattern, repl in _LATEX_SYNONYMS:
        text = pattern.sub(repl, text)
    text = _SPACE.sub(" ", text).strip().casefold()
    return _SPACE_AROUND_SYMBOL.sub(r"\1", text)


def text_hash(text: str) -> str:
    """Hex digest (128-bit BLAKE2b) of `normalize_text` of ``text``."""
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).hexdigest()
