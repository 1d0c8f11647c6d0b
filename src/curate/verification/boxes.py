r"""Boxed answers: ``\boxed{}`` and ``\fbox{}`` found with balanced braces, in one pass.

>>> final_boxes(r"\boxed{(2, 2)} \quad\text{and}\quad \boxed{(6, 2)}")
'(2, 2), (6, 2)'
"""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX = re.compile(r"\\(?:boxed|fbox)(?:\s*\{|\s+(?P<token>[^\s{}$\\]+))")
_BRACE = re.compile(r"(?<!\\)[{}]")
# between two boxes of one final answer: math delimiters, spacing, "=", a few label words
# ("x =", "Maximum value:", ", and Rayna is"), but no sentence break, number or "so"
_GAP_MARKUP = re.compile(
    r"\$+|\\[()\[\]]|\\\\|\\[,;!: ]|\\q?quad\b|\\(?:Rightarrow|implies|to)\b|[=&]"
    r"|\\(?:text|mathrm|textbf)\s*\{|_\{?\w{1,3}\}?|\\[A-Za-z]+"
)
_SENTENCE_BREAK = re.compile(r"[.!?]\s+[A-Z]")
_GAP_STOP = frozenset(
    ("answer", "final", "so", "then", "thus", "therefore", "hence", "gives", "give", "get",
     "gets", "got", "obtain", "now", "next", "finally", "check", "wait", "but", "however",
     "actually", "correct", "instead", "not", "if", "which", "because", "since")
)  # fmt: skip
_LETTERS = re.compile(r"[A-Za-z]+")
_GAP_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,;:.(){}'\n\t*")


def _closing(text: str, start: int = 0) -> dict[int, int]:
    """Position of the matching ``}`` of every balanced ``{`` at or after ``start``,
    found in one pass (a brace after a backslash is a literal brace)."""
    out: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text, start):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            out[stack.pop()] = m.start()
    return out


def braced(text: str, start: int) -> str | None:
    """The contents of the brace group whose ``{`` is at ``start``; None if unbalanced."""
    end = _closing(text, start).get(start)
    return None if end is None else text[start + 1 : end]


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, contents) of every balanced box, in order; a box inside a box is
    part of its contents. ``\\boxed 9`` (a box of one token, without braces) counts."""
    matches = list(_BOX.finditer(text))
    if not matches:
        return []
    braces = [m for m in matches if m.group().endswith("{")]
    closing = _closing(text, braces[0].end() - 1) if braces else {}
    out: list[tuple[int, int, str]] = []
    for m in matches:
        if out and m.start() < out[-1][1]:
            continue
        if not m.group().endswith("{"):  # \boxed 9
            out.append((m.start(), m.end(), m.group("token").rstrip(".,")))
            continue
        end = closing.get(m.end() - 1)
        if end is None:
            continue
        start, stop = m.end(), end  # the contents, without a box that is all of them
        while True:  # \boxed{\boxed{7}} is 7 (the same brace map: no rescans)
            while start < stop and text[start].isspace():
                start += 1
            while stop > start and text[stop - 1].isspace():
                stop -= 1
            inner = _BOXED.match(text, start, stop)
            if inner is None or closing.get(inner.end() - 1) != stop - 1:
                break
            start, stop = inner.end(), stop - 1
        out.append((m.start(), end + 1, text[start:stop]))
    return out


def last_boxed(text: str) -> str | None:
    r"""Contents of the last ``\boxed{...}`` (or ``\fbox{...}``) in ``text``.

    >>> last_boxed(r"so $x = \boxed{\frac{1}{2}}$ and \boxed{3}")
    '3'
    >>> last_boxed("no box") is None
    True
    """
    boxes = _boxes(text)
    return boxes[-1][2] if boxes else None


def _joins(gap: str) -> bool:
    """Whether the text between two boxes leaves them parts of one answer."""
    if len(gap) > 80 or _SENTENCE_BREAK.search(gap):
        return False
    rest = _GAP_MARKUP.sub(" ", gap)
    if any(c.isdigit() for c in rest) or not set(rest) <= _GAP_CHARS:
        return False
    words = [w.lower() for w in _LETTERS.findall(rest)]
    words = [w for w in words if w not in ("and", "or")]
    return len(words) <= 4 and not _GAP_STOP.intersection(words)


def final_boxes(text: str) -> str | None:
    r"""The boxes of the final answer: the last box and those just before it that only
    joining words and punctuation separate from it, joined with ", " (repeats once).

    >>> final_boxes(r"\boxed{1},\boxed{2},\boxed{3}")
    '1, 2, 3'
    >>> final_boxes(r"first \boxed{5}; adding 2 gives \boxed{7}.")
    '7'
    """
    boxes = _boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if not _joins(text[box[1] : group[-1][0]]):
            break
        group.append(box)
    contents = [c for _, _, c in reversed(group) if c]
    unique = list(dict.fromkeys(contents))
    return ", ".join(unique) if unique else None
