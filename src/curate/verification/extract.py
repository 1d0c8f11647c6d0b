r"""Reading the final answer out of a model response or a reference solution.

The rules, tried in the order of ``rules`` (the first that finds something wins):

``boxed``
    The ``\boxed{}`` (or ``\fbox{}``) of the final answer: the last box, and the boxes
    just before it that only punctuation, "and"/"or", ``\quad``, ``x =`` or a part label
    separates from it (``\boxed{(2, 2)} \quad\text{and}\quad \boxed{(6, 2)}``), joined
    with ", ". An intermediate box further back is not the final answer.
``final_answer``
    A final-answer sentence, the rightmost one in the text: Minerva/lm-eval's "Final
    Answer: The final answer is $X$. I hope it is correct.", DeepSeek/Qwen's "the
    answer is X", DAPO's "Answer: X" lines, "the correct option is (B)", and GSM8K's
    ``#### X``. What follows the anchor is read as an answer phrase (below).
``bare``
    The whole text, when it reads as an answer rather than a sentence: one line, no
    more than three words outside math and ``\text{}`` (two if it holds no math or
    number), none of them a verb or article ("x=6 or x=-6", "$\frac{1}{2}$", "No
    solution", "(2, \infty)", "**(D) 12**").
``whole``
    The whole text, whatever it is (the default last rule for gold answers, which are
    answers unless they hold a box or a ``####``).
``last``
    The last inline math (``$..$``, ``\(..\)``, ``\[..\]``, ``$$..$$``, with neighbours
    that "and"/"or"/commas join, and a ``%`` after it) or the last number outside math,
    whichever ends later: "The largest $n$ is 34." is 34, "Therefore $x \geq 5$ is the
    solution." is ``x \geq 5``.

Where the rules find no answer or only the weak last one, a response may still state an
answer in words or as a choice letter: `verify` then reads it by the gold answer's kind
(`last_sentence`, `named_choice`): "So the function is odd.", "**(D) 67.445**".

Before the rules, the text is cut to its answer part:

- ``think="after"`` (default): the text after the last ``</think>`` (or
  ``<|end_of_thought|>``, ``</reasoning>``); a response that opened a ``<think>`` and never
  closed it ran out while thinking and has no answer. ``"require"``: no answer without a
  closing tag (R1-style templates that open ``<think>`` in the prompt). ``"ignore"``: read
  the whole text.
- chat-template debris ends the response: ``<|im_end|>``, ``<|im_start|>user ...``,
  ``<|endoftext|>``, ``<|eot_id|>``, ``</s>``, ``<｜end▁of▁sentence｜>`` and a made-up next
  "User:" turn; what the model wrote after them is not its answer.

An answer phrase (after an anchor) is read up to the end of its sentence: the first math
group (with its ``%``) if it starts with math, else the plain text, whose number keeps its
sign, decimals and percent but loses a currency sign and a unit ("1,000.99€" is
``1000.99``, "5 m²" is ``5``). An answer that is one piece of math loses its delimiters.

>>> extract_answer(r"so $x=\boxed{2}$ or $x=\boxed{-3}$.")
'2, -3'
>>> extract_answer("Final Answer: The final answer is $100$. I hope it is correct.")
'100'
>>> extract_answer("The largest $n$ is 34.")
'34'
>>> extract_answer("<think>maybe \\boxed{3}</think> So \\boxed{4}.<|im_end|><|im_start|>user")
'4'
>>> extract_answer("<think>3 + 4 = 7, so the answer") is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from curate.verification.boxes import final_boxes
from curate.verification.plain import NUMBER, PERCENT, is_unit, number_text, plain_answer

Rule = Literal["boxed", "final_answer", "bare", "whole", "last"]
Think = Literal["after", "require", "ignore"]

PRED_RULES: tuple[Rule, ...] = ("boxed", "final_answer", "bare", "last")
"""How a prediction is read by default: a model response or a bare answer."""
GOLD_RULES: tuple[Rule, ...] = ("boxed", "final_answer", "whole")
"""How a gold answer is read by default: a bare answer or a whole reference solution."""
SOLUTION_RULES: tuple[Rule, ...] = ("boxed", "final_answer")
"""The rules that find an answer a solution states outright (used when reading datasets)."""
RULES: tuple[Rule, ...] = ("boxed", "final_answer", "bare", "whole", "last")

_THINK_OPEN = re.compile(r"<think>|<\|begin_of_thought\|>|<reasoning>")
_THINK_CLOSE = re.compile(r"</think>|<\|end_of_thought\|>|</reasoning>")
# special tokens of chat templates (<|im_end|>, <|eot_id|>, DeepSeek's <｜end▁of▁sentence｜>)
# and a made-up next turn
_DEBRIS = re.compile(
    r"<\|[^|<>\s]{1,40}\|>|<｜[^｜\n]{1,40}｜>|</s>|<eos>|<end_of_turn>|<start_of_turn>"
    r"|\n[^\S\n]*(?:User|Human|USER|HUMAN)[^\S\n]*:"
)
# a base model's next few-shot question, once the response has stated an answer
_NEXT_QUESTION = re.compile(r"\n[^\S\n]*(?:Question|Q|Problem)[^\S\n]*:")
_ANSWERED = re.compile(r"####|\\boxed|\banswer\b", re.IGNORECASE)
_ROLE_LINE = re.compile(r"[ \t]*(?:assistant|model)?[ \t]*\n?", re.IGNORECASE)

# a final-answer anchor; the answer phrase starts where the match ends
_ANCHOR = re.compile(
    r"\b(?:is|are)[ \t]*:(?!=)"  # "So the domain is: x < 2 or x > 3"
    r"|(?:final\s+answer|\banswers?\b|correct\s+(?:option|choice)|\boption\b|\bchoice\b)"
    r"(?:[ \t]*(?:\*+[ \t]*)?(?:is|are|will\s+be|would\s+be|equals|=|:)"  # "answer is", "Answer:"
    r"|[^.\n$]{0,60}?\s(?:is|are|=)(?=\s|:)"  # "the answer to part (b) is"
    r"|(?-i:(?<=^Answer)|(?<=\nAnswer)|(?<=choice|option))[ \t]*(?:\*+[ \t]*)?"  # "Answer $9$"
    r"(?=\$|\\\(|\\\[|-?\d|(?-i:\(?[A-E]\)?(?:[\s.,;:*]|$))))",  # "choice C"
    re.IGNORECASE,
)
_GSM8K = re.compile(r"^[ \t]*####", re.MULTILINE)
# an anchor inside a remark about a wrong answer is not the final answer
_REMARK = re.compile(
    r"\b(?:wrong|incorrect|mistake|error|would|if|not|isn't|common|tempting|instead)\b",
    re.IGNORECASE,
)
_PHRASE_CHARS = 600  # an answer phrase is read from this much text after its anchor
_TRIES = 20  # anchors tried, from the last, for one with an answer phrase after it

# (a display's contents cannot hold its own opening: an unclosed one is not scanned to
# the end of the text once per opening, which would be quadratic)
_MATH = re.compile(
    r"\$\$(?P<dd>(?:[^$]|\$(?!\$))+?)\$\$"
    r"|\\\[(?P<db>(?:[^\\]|\\(?![\[\]]))+?)\\\]"
    r"|\\\((?P<ip>(?:[^\\]|\\(?![()]))+?)\\\)"
    r"|(?<![\\$\d])\$(?P<id>(?:\\\$|[^\s$])(?:\\\$|[^$\n])*?)(?<![\s\\])\$(?!\d)",
    re.DOTALL,
)
_MATH_JOIN = re.compile(r"\s*(?:,\s*(?:and|or)?|and|or|&)\s*$", re.IGNORECASE)
_PERCENT_AFTER = re.compile(rf"\s*{PERCENT}", re.IGNORECASE)
_HEDGE = re.compile(r"[ \t]*\([ \t]*or\b[^()\n]{0,80}\)")  # "12 (or 13)"
_PHRASE_END = re.compile(
    r"\.(?=\s|$)|\n|;|,\s+(?=[A-Za-z]{2,})|\s+\((?![A-Ea-e]\))"
    r"|\s+(?:because|since|which|as|so|if|when|where|for|with|but|and\s+(?:so|thus|hence)|I\s+hope)\b",
    re.IGNORECASE,
)
_BOLD = re.compile(r"\*\*|__")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox|mathbf)\s*\{[^{}]*\}")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_SENTENCE_WORDS = frozenset(
    ("is", "are", "was", "were", "be", "been", "the", "an", "so", "thus", "hence",
     "therefore", "we", "it", "this", "that", "get", "gives", "got", "equals", "answer",
     "final", "then", "since", "because", "which", "would", "will")
)  # fmt: skip
_PRONOUN = re.compile(r"\b(?:I|a)\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_CHECK_LINE = re.compile(
    r"[\s*#_]*(?:check|verification|verify|double[- ]check(?:ing)?|sanity check)\b", re.I
)
_NAMED_CHOICE = re.compile(
    r"^[ \t*_]*(?:\\text(?:bf)?\{)?\(([A-E])\)"  # "(D) 67.445", "**(D)**" opening a line
    r"|^[ \t*_]*([A-E])[).:](?:\s|$)"  # "C) 10", "B." opening a line
    r"|^\W*([A-E])\W*$"  # a letter alone on its line
    r"|\b(?:[Cc]hoice|[Oo]ption|[Aa]nswer)[ \t]*(?:is[ \t]*)?:?[ \t]*(?:\*+[ \t]*)?\(?([A-E])\b"
    r"|选\s*([A-E])",  # GaoKao's 故选 A
    re.MULTILINE,
)
_REJECTS = re.compile(
    r"\b(?:not|n't|cannot|wrong|incorrect|false|eliminat\w*|rule[sd]? out|ruled out|except)\b",
    re.IGNORECASE,
)
_WORD_AFTER = re.compile(r"[ \t]+[A-Za-z]+")
_REASON = re.compile(r"\s(?:since|because)\s", re.IGNORECASE)
_PLAIN_TUPLE = re.compile(r"\(\s*-?[\d./]+(?:\s*,\s*-?[\d./]+)+\s*\)")


@dataclass(frozen=True, slots=True)
class Extraction:
    """The answer read from a text, and the rule that found it (or why none did)."""

    answer: str | None
    rule: str


def answer_region(text: str, think: Think = "after") -> str | None:
    """The part of a response that can state its answer (see the module docstring), or
    None when the model never finished thinking."""
    if think != "ignore":
        closes = list(_THINK_CLOSE.finditer(text))
        if closes:
            text = text[closes[-1].end() :]
        elif think == "require" or _THINK_OPEN.search(text):
            return None
    start = 0
    for m in _DEBRIS.finditer(text):
        if text[start : m.start()].strip():
            text = text[start : m.start()]
            break
        start = m.end()
        if m.group() == "<|im_start|>":
            start = _ROLE_LINE.match(text, start).end()  # type: ignore[union-attr]  # always matches
    else:
        text = text[start:]
    for m in _NEXT_QUESTION.finditer(text):
        if _ANSWERED.search(text, 0, m.start()):
            return text[: m.start()]
    return text


def _math_groups(text: str) -> list[tuple[int, int, str]]:
    """Inline and display math of ``text`` as (start, end, source) groups: math joined by
    commas/"and"/"or" is one group, a ``%`` after it belongs to it (as ``\\%``)."""
    groups: list[tuple[int, int, str]] = []
    for m in _MATH.finditer(text):
        start, end = m.start(), m.end()
        source = text[start:end]
        if p := _PERCENT_AFTER.match(text, end):
            end, source = p.end(), source + "\\%"
        if groups and _MATH_JOIN.fullmatch(text[groups[-1][1] : start]):
            first, last, before = groups.pop()
            start, source = first, before + text[last:start] + source
        groups.append((start, end, source))
    return groups


def _phrase_end(text: str, start: int = 0) -> int:
    """Where the answer phrase that runs from ``start`` ends: the end of its sentence, or
    of a hedge right after it ("12 (or 13)" is read whole)."""
    cut = _PHRASE_END.search(text, start)
    end = cut.start() if cut else len(text)
    hedge = _HEDGE.match(text, end)
    return hedge.end() if hedge else end


def _phrase(text: str) -> str | None:
    """The answer phrase that starts ``text`` (what follows a final-answer anchor): its
    first math when only a unit or punctuation follows it, else the words up to the end
    of the sentence."""
    text = _BOLD.sub("", text[:_PHRASE_CHARS]).lstrip(" \t\n:*")
    if not text.strip():
        return None
    groups = _math_groups(text)
    if groups:
        start, end, source = groups[0]
        lead = text[:start]
        if not NUMBER.search(lead) and (lead.count(" ") <= 4 and "\n" not in lead.strip()):
            stop = _phrase_end(text, end)
            if is_unit(re.split(r"[,;]", text[end:stop], maxsplit=1)[0]):  # "$5$ cm, i.e."
                return source
            return text[start:stop].strip().rstrip(".:,")  # "$12$ squared": read whole
    plain = text[: _phrase_end(text)].strip().rstrip(".:,")
    return plain_answer(plain) if plain else None


def _final_answer(text: str) -> str | None:
    """The answer phrase after the rightmost anchor that has one (the last few tried); an
    anchor in a remark about a wrong answer ("a common mistake gives the answer 12") is
    not one."""
    found = {m.span() for pattern in (_ANCHOR, _GSM8K) for m in pattern.finditer(text)}
    spans = sorted(found, key=lambda span: span[1], reverse=True)
    for start, end in spans[:_TRIES]:
        sentence = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start)) + 1
        if _REMARK.search(text, sentence, start):
            continue
        answer = _phrase(text[end : end + _PHRASE_CHARS])
        if answer is not None:
            return answer
    return None


def _is_bare(text: str) -> bool:
    if "\n" in text.strip() or len(text) > 200:
        return False
    outside = _TEXT_CMD.sub(" ", _MATH.sub(" ", text))
    words = [w.lower() for w in _WORD.findall(outside) if w.lower() not in ("and", "or")]
    if outside != text or any(c.isdigit() for c in text):
        limit = 3
    elif words and _PRONOUN.search(outside):  # "I give up.", "a guess"
        return False
    else:
        limit = 2
    return len(words) <= limit and not _SENTENCE_WORDS.intersection(words)


def _bare(text: str) -> str | None:
    if not _is_bare(text):
        return None
    groups = _math_groups(text)
    if len(groups) == 1 and groups[0][0] == 0 and groups[0][1] == len(text.rstrip(". ")):
        return groups[0][2]  # all math: "$28$ %" is 28\%
    return plain_answer(text)


def _last(text: str) -> str | None:
    lines = text.rstrip().splitlines()
    while len(lines) > 1 and _CHECK_LINE.match(lines[-1]):  # "Check: 20 + 25 + 15 = 60"
        lines.pop()
    text = "\n".join(lines)
    # a reason given after the answer is not the answer: "N = 11 since 11 squared is 121."
    if (why := _REASON.search(text, max(text.rfind("\n"), text.rfind(". ")) + 1)) is not None:
        return _last_candidate(text[: why.start()]) or _last_candidate(text)
    return _last_candidate(text)


def _last_candidate(text: str) -> str | None:
    """The last inline math or the last number (or tuple of numbers) outside math."""
    groups = _math_groups(text)
    pieces, at = [], 0
    for start, end, _ in groups:  # the text with its math blanked out
        pieces += [text[at:start], " " * (end - start)]
        at = end
    masked = "".join([*pieces, text[at:]])
    numbers = list(NUMBER.finditer(masked))
    math_end = groups[-1][1] if groups else -1
    tuples = list(_PLAIN_TUPLE.finditer(masked))
    if (
        tuples
        and tuples[-1].end() > math_end
        and (not numbers or tuples[-1].end() >= numbers[-1].end())
    ):
        return tuples[-1].group()
    if numbers and numbers[-1].end() > math_end:
        last = numbers[-1]
        follow = _WORD_AFTER.match(masked, last.end())
        if follow is not None and not is_unit(follow.group()):  # "2 pi", "12 factorial"
            return masked[last.start() : follow.end()].strip()
        return number_text(last)
    return groups[-1][2] if groups else None


def named_choice(region: str) -> str | None:
    """The choice letter the last two lines of an answer part name, where a letter stands
    as the choice ("(D) 67.445" or "C) 10" opening a line, "option C", a letter alone,
    "故选 A"); a line that rejects an option ("(B) is incorrect") names none.

    >>> named_choice("Only 67.445 rounds to 67.4.\\n\\n**(D) 67.445**")
    'D'
    >>> named_choice("We rule out (B).") is None
    True
    """
    for line in reversed(region.strip().splitlines()[-2:]):
        line = line[-300:]
        found: list[tuple[str, ...]] = [] if _REJECTS.search(line) else _NAMED_CHOICE.findall(line)
        if found:
            return next(c for c in found[-1] if c)
    return None


def last_sentence(region: str) -> str | None:
    """The last sentence of an answer part (its last 200 characters), or None.

    >>> last_sentence("It is not even. So the function is odd.")
    'So the function is odd.'
    """
    sentences = [s.strip() for s in _SENTENCE_END.split(region.strip()) if s.strip()]
    return sentences[-1][-200:] if sentences else None


def _tidy(answer: str) -> str:
    """Without surrounding space and, if it is one piece of math, its delimiters."""
    answer = answer.strip()
    m = _MATH.match(answer)
    if m and answer[m.end() :].strip() in ("", "\\%"):
        inner = next(g for g in m.groups() if g is not None)
        answer = inner.strip() + answer[m.end() :].strip()
    return answer


def read_answer(
    text: str | None, *, rules: tuple[Rule, ...] = PRED_RULES, think: Think = "after"
) -> Extraction:
    r"""The answer stated in ``text`` and the rule that found it (see the module docstring).

    >>> read_answer("So 3 + 4 = 7.\n#### 7")
    Extraction(answer='7', rule='final_answer')
    >>> read_answer("I am not sure.")
    Extraction(answer=None, rule='no_answer')
    """
    if text is None or not text.strip():
        return Extraction(None, "empty")
    region = answer_region(text, think)
    if region is None:
        return Extraction(None, "unfinished_think")
    region = region.strip()
    for rule in rules:
        answer: str | None
        if rule == "boxed":
            answer = final_boxes(region)
        elif rule == "final_answer":
            answer = _final_answer(region)
        elif rule == "bare":
            answer = _bare(_BOLD.sub("", region).strip())
        elif rule == "whole":
            answer = region or None
        elif rule == "last":
            answer = _last(region)
        else:
            raise ValueError(f"unknown extraction rule {rule!r}; expected one of {RULES}")
        if answer is not None and answer.strip():
            return Extraction(_tidy(answer), rule)
    return Extraction(None, "no_answer")


def extract_answer(
    text: str | None, *, rules: tuple[Rule, ...] = PRED_RULES, think: Think = "after"
) -> str | None:
    r"""The final answer stated in a model response or a solution, or None.

    ``rules`` and ``think`` as in `read_answer`; ``rules=SOLUTION_RULES`` finds only what
    a text states outright (a box, a final-answer sentence, ``####``).

    >>> extract_answer(r"Thus the area is $\boxed{12\pi}$.")
    '12\\pi'
    >>> extract_answer("She has 3 + 4 = 7 apples.\n#### 7")
    '7'
    >>> extract_answer("Therefore, the final answer is 5.")
    '5'
    """
    return read_answer(text, rules=rules, think=think).answer
