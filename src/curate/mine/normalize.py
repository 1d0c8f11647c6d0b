"""The text a page classifier sees: MegaMath's normalisation of a web page.

Control characters and undecodable bytes (U+FFFD) dropped, NFKC, lower case, every digit
replaced by ``0``, words and punctuation as separate tokens, each line capped at
``max_line_tokens`` tokens, and the lines joined by spaces (fastText reads one example per
line). The same function prepares training and scoring text, so a
classifier never sees text prepared another way.

>>> normalize("Let $x^2 = 49$.\\nThen   x = ±7!")
'let $ x ^ 0 = 00 $ . then x = ± 0 !'
>>> normalize("a b c d", max_line_tokens=2)
'a b'
"""

from __future__ import annotations

import re
import unicodedata

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_DIGIT = re.compile(r"\d")
_JUNK = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")  # control bytes, undecodable

MAX_LINE_TOKENS = 1024
"""MegaMath's cap on the tokens of one line (a minified page is one very long line)."""

MAX_CHARS = 200_000
"""Only the first this many characters of a page are read (a 10 MB page is not a 10 MB
training example)."""


def normalize(
    text: str, *, max_line_tokens: int = MAX_LINE_TOKENS, max_chars: int = MAX_CHARS
) -> str:
    """The normalised text of a page (see the module docstring)."""
    text = unicodedata.normalize("NFKC", _JUNK.sub(" ", text[:max_chars])).lower()
    text = _DIGIT.sub("0", text)
    lines = []
    for line in text.splitlines():
        tokens = _TOKEN.findall(line)[:max_line_tokens]
        if tokens:
            lines.append(" ".join(tokens))
    return " ".join(lines)
