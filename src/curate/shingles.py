"""Tokens, shingles and numbers for near-duplicate detection (MinHash, semantic dedup).

`math_tokens` splits a `curate.text.normalize_text`-normalized text into the tokens
near-duplicate detection compares (the definition, in plain Python), and `shingles`
hashes their n-grams for many texts at once (numpy, no per-token Python), giving the
same result. `numbers` (and `number_keys`, in bulk) is the one "numbers must match" rule
of both dedup stages. These tokens differ from `curate.decontam.ngram.tokenize` on purpose:
duplicates differ in wording, so punctuation, visual LaTeX and answer-format sentences
are dropped here, while decontamination follows DeepSeekMath's n-gram rule over words,
CJK characters and operators and must not forgive a benchmark's own sentences.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import unicodedata
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from curate.hashing import MAX_GRAM, constants, fmix64, gram_hashes, mix64
from curate.text import LATEX_COMMANDS, QUOTES, normalize_text

# ---------------------------------------------------------------------------------------------
# Tokens and shingles for near-duplicate detection (MinHash). `math_tokens` is the definition,
# in plain Python; `shingles` computes the same thing for many texts at once with numpy.

# LaTeX that only changes how a formula looks, beyond what normalize_text already unifies
_WRAPPERS = (
    *("text", "textbf", "textit", "textrm", "mathrm", "mathbf", "mathit", "mathsf", "mbox"),
    *("operatorname", "limits", "nolimits"),
)
_TOKEN_SAME = {
    **{f"\\{c}": (v.strip() or None) for c, v in LATEX_COMMANDS.items() if c.isalpha()},
    **{f"\\{c}": None for c in _WRAPPERS},
    **dict.fromkeys(("\\dots", "\\ldots", "\\cdots", "\\dotsb", "\\dotsc"), "\\dots"),
    **dict.fromkeys(("\\to", "\\rightarrow", "\\longrightarrow"), "\\to"),
    "\\lt": "<",
    "\\gt": ">",
    # punctuation and grouping that carry no content once tokens are split
    **dict.fromkeys(("{", "}", ",", ";", ":", '"', "`", "~", "&")),
}
_SENTENCE_END = (".", "?")  # "!" stays: it is also the factorial
# A sentence holding one of these (and no number) is an answer-format instruction such as
# "Put your final answer in \boxed{}." or "Let's think step by step.": it is left out of the
# shingles, so a problem with or without such a sentence is the same problem.
_MARKERS = (
    *(("\\boxed",), ("your", "answer"), ("final", "answer"), ("step", "by", "step")),
    # the answer-format sentences that DAPO-17k and other re-transcriptions add
    *(("please",), ("provide",), ("original", "answer"), ("give", "the", "value"), ("fill", "in")),
)
# Unicode look-alikes that NFKC keeps: Cyrillic letters shaped like Latin ones, and math
# symbols written as characters instead of LaTeX commands.
_MATH_SYMBOLS = {
    **dict.fromkeys("×·⋅", "cdot"),
    **{"≤": "le", "≥": "ge", "≠": "ne", "÷": "div", "√": "sqrt", "∞": "infty", "±": "pm"},
    **{"∓": "mp", "∠": "angle", "△": "triangle", "∈": "in", "∪": "cup", "∩": "cap"},
    **{"∅": "emptyset", "→": "to", "π": "pi", "θ": "theta", "α": "alpha", "β": "beta"},
    **{"γ": "gamma", "δ": "delta", "λ": "lambda", "μ": "mu", "σ": "sigma", "φ": "phi"},
    "ω": "omega",
}
_LOOKALIKES = str.maketrans(
    {
        **dict(zip("аеорсухіјѕԁһο", "aeopcyxijsdho", strict=True)),
        **{c: f" \\{name} " for c, name in _MATH_SYMBOLS.items()},
        "°": "^\\circ ",
        "′": "'",
    }
)
_TOKEN = re.compile(r"\\[a-z]+|[a-z]+|[0-9]+|[^\x00-\x7f]|[!-\[\]-~]")


def _prepare(text: str) -> str:
    return normalize_text(text).translate(_LOOKALIKES)


# ---------------------------------------------------------------------------------------------
# What is not the statement of a problem. Transcriptions of one problem differ most in what goes
# around it: one source has the code of its figure (Asymptote, TikZ), another a picture's file
# name or nothing; one keeps the multiple-choice options, another drops them; one numbers the
# conditions of a list, another writes them inline; a wiki copy carries links, signatures and
# LaTeX spacing. `dedup_text` takes these out before tokenizing (regular expressions that
# Python's `re` and Polars' Rust engine read alike: no look-around, no (?i), no \s or \S).

_FIGURE = (
    r"(?s)\[[aA][sS][yY]\].*?(?:\[/[aA][sS][yY]\]|$)|<asy>.*?(?:</asy>|$)"
    r"|\\begin\{(?:asy|tikzpicture)\}.*?(?:\\end\{(?:asy|tikzpicture)\}|$)"
)
_LABEL = r'label[ \t\n]*\([ \t\n]*"([^"]*)"'
_PICTURE = r"\.(?:[pP][nN][gG]|[jJ][pP][eE]?[gG]|[gG][iI][fF]|[sS][vV][gG])\b"
_NOISE = "|".join(
    (
        rf"(?m)^[ \t]*[A-Za-z0-9_ \t-]*{_PICTURE}[ \t]*$",  # a file name line: "AIME 1989 15.png"
        rf"[^ \t\n\r\f\v]+{_PICTURE}",  # a file name: "1988-1.png"
        r"https?://[^ \t\n\r\f\v]+",  # a link
        r"^[^\n]*\(talk\)[^\n]*$",  # a wiki signature: "Diagram by X (talk) 18:52, 15 ..."
        r"(?:^|[ \t])~[ \t]?[A-Za-z_][A-Za-z0-9_.]*",  # a wiki signature: "~MRENTHUSIASM"
        # LaTeX spacing by a length: \kern 0.1em, \hspace{3pt}, \\[4pt]
        r"\\(?:kern|mkern|hspace\*?|vspace\*?|hskip|vskip)[ \t]*\{?[ \t]*-?[0-9.]+[ \t]*"
        r"(?:em|ex|pt|mu|cm|mm|in|bp)[ \t]*\}?",
        r"\\\\[ \t]*\[[ \t]*-?[0-9.]+[ \t]*(?:em|ex|pt|mm|cm)[ \t]*\]",
        # the column specification of an array: {c@{\hspace{3pt}}c}
        r"\\begin\{(?:array|tabular)\}[ \t]*\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}",
    )
)
_CHOICE_A = r"\(A\)|\\left\(A\\right\)"
_CHOICES = r"(?s)(?:\(A\)|\\left\(A\\right\)).*(?:\(B\)|\\left\(B\\right\)).*$"
# "Which of the following ...": the options are the question
_ABOUT_CHOICES = r"[oO][fF][ \t\n]+[tT][hH][eE][ \t\n]+[fF][oO][lL][lL][oO][wW][iI][nN][gG]"
_ENUMERATION = r"(?m)^[ \t]*\$?(?:\(|\\left\()?[0-9]{1,2}(?:[.)]|\\right\))\$?[ \t]"
_DIGIT, _DIGITS = "[0-9]", "[0-9]+"
_RE_FIGURE, _RE_LABEL, _RE_NOISE, _RE_CHOICES, _RE_ENUMERATION, _RE_DIGIT, _RE_DIGITS = map(
    re.compile, (_FIGURE, _LABEL, _NOISE, _CHOICES, _ENUMERATION, _DIGIT, _DIGITS)
)
# cheap tests for texts that may hold any of the above (each needed by what it guards)
_NOISY = (
    r"\.[pPjJgGsS]|://|\(talk\)|~|\\m?kern|\\[hv]s(?:pace|kip)|\\\\[ \t]*\["
    r"|\\begin\{(?:array|tabular)\}"
)
# a list: lines that open with "1." (or "(1)") and "2."
_LISTED_1, _LISTED_2 = (rf"(?m)^[ \t]*\$?(?:\(|\\left\()?{n}(?:[.)]|\\right\))" for n in (1, 2))
_MAYBE = rf"[aA][sS][yY]|tikz|{_CHOICE_A}|{_NOISY}|{_LISTED_1}"
_RE_NOISY, _RE_CHOICE_A, _RE_ABOUT_CHOICES, _RE_LISTED_1, _RE_LISTED_2 = map(
    re.compile, (_NOISY, _CHOICE_A, _ABOUT_CHOICES, _LISTED_1, _LISTED_2)
)


def dedup_text(text: str) -> str:
    r"""The statement of a problem, as near-duplicate detection compares it.

    An Asymptote figure (``[asy]...[/asy]``) is replaced by those of its ``label`` strings
    that show a number the text does not state, put at the end: its drawing code is not
    the problem, and point names or repeated lengths say nothing new (when nothing else in
    the problem has a digit, the figure is the data: all its numbers are kept). Picture file
    names (``1988-1.png``, or a line such as ``AIME 1989 Problem 15.png``) and
    multiple-choice options (from ``(A)``, when a ``(B)`` follows, to the end; kept when the
    question is about them: "which *of the following*") are dropped, and so are the numbers
    of an enumerated list (``1.``, ``(2)`` ... at the start of a line, where lines open
    with both ``1`` and ``2``). `math_tokens` (and so
    `shingles`, `numbers`, `number_keys`) read this text.

    >>> dedup_text('If $y=2$, find $x$. [asy]label("$30^\\circ$");label("$2$");label("B");[/asy]')
    'If $y=2$, find $x$.   $30^\\circ$'
    >>> math_tokens(r"What is $2+3$? $\textbf{(A)}\ 4 \qquad \textbf{(B)}\ 5$")
    ['what', 'is', '2', '+', '3']
    """
    lower = text.lower()
    figures = _RE_FIGURE.findall(text) if "asy" in lower or "tikz" in lower else []
    if figures:
        text = _RE_FIGURE.sub(" ", text)
    if _RE_NOISY.search(text):
        text = _RE_NOISE.sub(" ", text)
    if _RE_CHOICE_A.search(text) and not _RE_ABOUT_CHOICES.search(text):
        text = _RE_CHOICES.sub(" ", text)
    if _RE_LISTED_1.search(text) and _RE_LISTED_2.search(text):
        text = _RE_ENUMERATION.sub(" ", text)
    return _with_labels(text, " ".join(figures)) if figures else text


def _with_labels(text: str, drawn: str) -> str:
    """``text`` and the labels of its figures that show a number it does not state (point
    names and repeated lengths say nothing new); all the figures' numbers if it has none."""
    stated = set(_RE_DIGITS.findall(text))
    labels = [s for s in _RE_LABEL.findall(drawn) if not set(_RE_DIGITS.findall(s)) <= stated]
    if not stated and not labels:  # the figure is the data
        labels = _RE_DIGITS.findall(drawn)
    return " ".join((text, *labels))


def _dedup_texts(texts: pl.Series) -> pl.Series:
    """`dedup_text` of many texts, in Polars (the labels a figure keeps: in Python)."""
    at = np.flatnonzero(texts.str.contains(_MAYBE).fill_null(False).to_numpy())
    if not len(at):
        return texts
    out = texts.clone()
    drawn = at[out.gather(at).str.contains(_FIGURE).fill_null(False).to_numpy()]
    figures = texts.gather(drawn).str.extract_all(_FIGURE).list.join(" ").to_list()
    out.scatter(drawn, texts.gather(drawn).str.replace_all(_FIGURE, " "))

    def replace(hit: pl.Series, pattern: str, every: bool = True) -> None:
        mask = hit.fill_null(False).to_numpy()
        if mask.any():
            done = out.gather(at).filter(mask)
            done = done.str.replace_all(pattern, " ") if every else done.str.replace(pattern, " ")
            out.scatter(at[mask], done)

    replace(out.gather(at).str.contains(_NOISY), _NOISE)
    part = out.gather(at)
    about = part.str.contains(_ABOUT_CHOICES)
    replace(part.str.contains(_CHOICE_A) & ~about, _CHOICES, every=False)
    part = out.gather(at)
    replace(part.str.contains(_LISTED_1) & part.str.contains(_LISTED_2), _ENUMERATION)
    if len(drawn):
        bodies = out.gather(drawn).to_list()
        out.scatter(drawn, [_with_labels(b, f) for b, f in zip(bodies, figures, strict=True)])
    return out


def _strip_instructions(tokens: list[str]) -> list[str]:
    sentences: list[list[str]] = [[]]
    for tok in tokens:
        if tok in _SENTENCE_END:
            sentences.append([])
        else:
            sentences[-1].append(tok)

    def instruction(s: list[str]) -> bool:
        has_marker = any(
            tuple(s[i : i + len(m)]) == m for m in _MARKERS for i in range(len(s) - len(m) + 1)
        )
        return has_marker and not any("0" <= t[0] <= "9" for t in s)

    kept = [t for s in sentences if not instruction(s) for t in s]
    return kept or [t for s in sentences for t in s]


def math_tokens(text: str) -> list[str]:
    r"""The tokens near-duplicate detection compares: words, numbers, LaTeX commands, symbols.

    The text is normalized with `normalize_text` (plus Unicode look-alikes such as Cyrillic
    ``а`` or ``≤``), split into lowercase words, digit runs, ``\commands``, single symbols
    and single non-ASCII characters; visual-only LaTeX (``\left``, ``\text``, braces) and
    punctuation are dropped, ``\dfrac``/``\tfrac`` become ``\frac``, and a sentence that
    is an answer-format instruction (it mentions ``\boxed``, "your answer", "final answer"
    or "step by step", and holds no number) is left out.

    >>> math_tokens(r"Find $\dfrac{12}{x}$ if $x = 3$. Put your answer in \boxed{}.")
    ['find', '\\frac', '12', 'x', 'if', 'x', '=', '3']
    >>> math_tokens("Let’s say х ≤ ５.") == math_tokens("Let's say $x \\leq 5$.")
    True
    """
    out = []
    for tok in _TOKEN.findall(_prepare(dedup_text(text))):
        tok = _TOKEN_SAME.get(tok, tok)
        if tok is not None:
            out.append(tok)
    return _strip_instructions(out)


def numbers(text: str) -> list[str]:
    r"""The numbers of a text, sorted: the one "numbers must match" rule of deduplication.

    A problem with its numbers changed is another problem, however alike its words, so
    `curate.dedup.minhash.MinHashDedup` (``numbers="match"``) and
    `curate.dedup.semantic.SemanticDedup` (``numbers_must_match=True``) join two texts only
    when these lists are equal: the same numbers, each as often, in any order (a reworded
    problem often states them in another order). The numbers are the digit runs of
    `math_tokens`, with a ``-`` token right before one as its sign; they are compared as
    written: ``1{,}000`` and ``1,000`` agree, ``1000``, ``2.50`` against ``2.5`` or
    ``\frac12`` against ``\frac{1}{2}`` do not. `number_keys` hashes them for many texts.

    >>> numbers(r"Find $x$ if $x^2 - 10 = 1{,}000$ and $y \in (-5, 3)$.")
    ['-10', '-5', '000', '1', '2', '3']
    >>> numbers("If y = 3 and x = 2, find x + y.") == numbers("Find x+y when x=2, y=3.")
    True
    """
    tokens = math_tokens(text)
    signed = ("-" + t if i and tokens[i - 1] == "-" else t for i, t in enumerate(tokens))
    return sorted(t for t, plain in zip(signed, tokens, strict=True) if "0" <= plain[0] <= "9")


# ---- the same, vectorized ------------------------------------------------------------------
# Every hash below is plain uint64 arithmetic (wrapping), so shingles are the same on every
# platform and every run; numpy does the work over all texts of a batch at once.

_U64 = np.uint64
_LEN_MUL, _LEN_ADD = _U64(0x9E3779B97F4A7C15), _U64(0x632BE59BD9B4E019)
_BYTE_HASH = fmix64(np.arange(1, 257, dtype=np.uint64))  # one random hash per byte
_MASK64 = (1 << 64) - 1
_SIGN = constants("curate.shingles.sign", 1)[0]  # marks a number with a "-" before it


def token_hash(token: str) -> int:
    """The 64-bit hash `shingles` gives a token: its UTF-8 bytes, 8 at a time, through
    `curate.hashing.fmix64` (tokens longer than 64 bytes: BLAKE2b).

    >>> token_hash("x") == token_hash("x") != token_hash("y")
    True
    """
    data = token.encode()
    if len(data) > 64:
        return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    acc = (len(data) * int(_LEN_MUL) + int(_LEN_ADD)) & _MASK64
    for i in range(0, max(len(data), 1), 8):
        acc = mix64(acc ^ int.from_bytes(data[i : i + 8], "little"))
    return acc


# Texts the byte path handles alone: printable ASCII, and no dropped command between two
# digits (normalize_text turns "1\left2" into "12"); the others go through normalize_text.
_PLAIN = r"^[\t\n\x0b\x0c\r -~]*$"
_SEPARATOR = np.zeros(256, bool)
_SEPARATOR[list(b",;:! ()[]$")] = True  # "\$" too: normalize_text makes "$" a space first
_DIGIT_MERGE = (
    r"[0-9](?:\\(?:" + "|".join(c for c, v in LATEX_COMMANDS.items() if v == "") + "))+[0-9]"
)

_KEEP, _DROP_TOKEN, _END, _REPLACE = range(4)
_SPECIAL = {
    token_hash(k): (_DROP_TOKEN if v is None else _REPLACE, v) for k, v in _TOKEN_SAME.items()
}
_SPECIAL.update({token_hash(k): (_END, None) for k in _SENTENCE_END})
_SPECIAL_KEYS = np.array(sorted(_SPECIAL), dtype=np.uint64)
_SPECIAL_ACTION = np.array([_SPECIAL[int(k)][0] for k in _SPECIAL_KEYS], dtype=np.int8)
_SPECIAL_TEXT = [_SPECIAL[int(k)][1] or "" for k in _SPECIAL_KEYS]
_SPECIAL_TARGET = np.array([token_hash(t) for t in _SPECIAL_TEXT], dtype=np.uint64)
_SPECIAL_BYTES = np.frombuffer("".join(_SPECIAL_TEXT).encode(), np.uint8)
_SPECIAL_END = np.cumsum([len(t.encode()) for t in _SPECIAL_TEXT])
_SPECIAL_START = _SPECIAL_END - [len(t.encode()) for t in _SPECIAL_TEXT]
_MARKER_HASHES = [np.array([token_hash(t) for t in m], dtype=np.uint64) for m in _MARKERS]
_MINUS = _U64(token_hash("-"))
_WORD_MASK = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [_MASK64], dtype=np.uint64)


class Shingles(NamedTuple):
    """Shingle hashes of many texts, text after text (see `shingles`)."""

    hashes: np.ndarray  # uint64: text i's shingles are hashes[offsets[i]:offsets[i + 1]]
    offsets: np.ndarray  # int64, one more than there are texts
    numbers: np.ndarray  # uint64 per text: `number_keys`, a hash of its `numbers` (0: none)


def _ragged(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + n)`` for every (s, n), without a Python loop."""
    firsts = np.cumsum(lengths) - lengths
    return np.repeat(starts - firsts, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)


def _segment_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Wrapping uint64 sum of ``values[offsets[i]:offsets[i+1]]`` for every i."""
    acc = np.zeros(len(values) + 1, np.uint64)
    np.cumsum(values, out=acc[1:])
    out: np.ndarray = acc[offsets[1:]] - acc[offsets[:-1]]
    return out


# For texts that are not plain ASCII, `_unicode` does normalize_text's Unicode work (NFKC,
# quotes, case, Unicode spaces) and the look-alikes in bulk, in Polars (Rust, no per-text
# Python), and leaves the LaTeX to the byte path. That matches `_prepare` when (a) Polars and
# Python's `unicodedata` agree on every character of the text, which holds for characters
# Python knows (assigned in its Unicode version: NFKC of assigned characters is frozen by the
# Unicode stability policy; `test_minhash_dedup` checks every one of them against the
# installed Polars) and (b) lowercasing is casefolding, which fails for a few hundred
# characters (ß, ς, Cherokee, Greek with iota) and for "Σ" (Rust lowercases a final one to
# "ς"), and (c) no ASCII letter appears right after a \command where normalize_text's LaTeX
# pass saw a non-letter (İ lowercases to "i" and a combining dot; "\alphaа" with a Cyrillic
# "а"). Texts that fail any of these (rare) take `_prepare`, the definition, in Python.


def _class(codes: Sequence[int]) -> str:
    """A Rust-regex character class body of code points, as ranges: ``\\x{80}-\\x{2ff}...``."""
    out: list[str] = []
    ordered = sorted(codes)
    lo = prev = ordered[0]
    for code in [*ordered[1:], -1]:
        if code != prev + 1:
            out.append(f"\\x{{{lo:x}}}" + (f"-\\x{{{prev:x}}}" if prev > lo else ""))
            lo = code
        prev = code
    return "".join(out)


class _UnicodeRules(NamedTuple):
    unknown: str  # a character Python's unicodedata does not know (or not checked: astral)
    special: str  # after NFKC: lowercasing differs from casefolding, or makes an ASCII letter
    spaces: str  # Unicode spaces that are not ASCII (normalize_text's split() drops them)
    lookalike_after_command: str


_QUOTE_MAP = {chr(k): str(v) for k, v in QUOTES.items()}
_LOOKALIKE_MAP = {chr(k): str(v) for k, v in _LOOKALIKES.items()}
_KNOWN_PLANES = (range(0x80, 0xD800), range(0xE000, 0x10000), range(0x1D400, 0x1D800))


def _unicode_rules() -> _UnicodeRules:
    """The regexes of `_unicode`, built on first use (about 20 ms over 62K characters; once,
    not by every thread of `curate.dedup.sketch.signatures` at the same time)."""
    with _RULES_LOCK:
        return _build_unicode_rules()


_RULES_LOCK = threading.Lock()


@functools.cache
def _build_unicode_rules() -> _UnicodeRules:
    known = [c for r in _KNOWN_PLANES for c in r if unicodedata.category(chr(c)) != "Cn"]
    special = [c for c in known if chr(c).casefold() != chr(c).lower()]
    letters = "".join(k for k in map(chr, _LOOKALIKES) if str(_LOOKALIKES[ord(k)])[:1].isalpha())
    return _UnicodeRules(
        unknown=f"[^\\x00-\\x7f{_class(known)}]",
        special=f"[{_class([*special, ord('Σ'), ord('İ')])}]",
        spaces=f"[{_class([c for c in range(0x80, 0x3001) if chr(c).isspace()])}]",
        lookalike_after_command=f"\\\\[a-zA-Z]+[{_class(list(map(ord, letters)))}]",
    )


def _unicode(texts: pl.Series) -> pl.Series:
    """normalize_text's Unicode work and the look-alikes, for texts that are not plain ASCII;
    null where the text must take `_prepare` instead."""
    rules = _unicode_rules()
    unknown = texts.str.contains(rules.unknown)
    folded = texts.str.normalize("NFKC")
    unknown |= folded.str.contains(rules.special)
    folded = folded.str.replace_many(_QUOTE_MAP).str.to_lowercase()
    unknown |= folded.str.contains(rules.lookalike_after_command)
    folded = folded.str.replace_all(rules.spaces, " ").str.replace_many(_LOOKALIKE_MAP)
    return pl.select(pl.when(unknown).then(None).otherwise(folded)).to_series()


def _texts_bytes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UTF-8 bytes of the texts, each followed by a newline; their byte offsets; and which
    texts still need the byte path's share of normalize_text (the others went through
    `_prepare` whole)."""
    texts = _dedup_texts(texts)
    values = texts.clone()  # scatter below writes to the copy, never to the caller's texts
    fast = np.ones(len(texts), dtype=bool)
    other = np.flatnonzero(~texts.str.contains(_PLAIN).to_numpy())
    if len(other):
        done = _unicode(texts.gather(other))
        values.scatter(other, done)
        _prepare_at(values, texts, other[done.is_null().to_numpy()], fast)
    data, offsets = _joined(values)
    # a digit right before a backslash may start a `_DIGIT_MERGE` ("1\left2": see above)
    near = np.flatnonzero((data[:-1] >= ord("0")) & (data[:-1] <= ord("9")) & (data[1:] == 92))
    suspects = np.searchsorted(offsets, near, side="right") - 1  # sorted: drop repeats
    suspects = suspects[np.diff(suspects, prepend=-1) > 0]
    suspects = suspects[fast[suspects]]
    if len(suspects):
        merge = suspects[values.gather(suspects).str.contains(_DIGIT_MERGE).to_numpy()]
        if len(merge):
            _prepare_at(values, texts, merge, fast)
            data, offsets = _joined(values)
    return data, offsets, fast


def _prepare_at(values: pl.Series, texts: pl.Series, at: np.ndarray, fast: np.ndarray) -> None:
    """``values[i] = _prepare(texts[i])`` for every i in ``at`` (marked not ``fast``)."""
    if len(at):
        values.scatter(at, [_prepare(t) for t in texts.gather(at).to_list()])
        fast[at] = False


def _joined(values: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The texts' UTF-8 bytes, each followed by a newline, and where each one starts."""
    arrow = (values + "\n").to_arrow()
    if arrow.type != pa.large_string():
        arrow = arrow.cast(pa.large_string())
    _, bounds, chars = arrow.buffers()
    offsets = np.frombuffer(bounds, np.int64)[arrow.offset : arrow.offset + len(arrow) + 1]
    return np.frombuffer(chars, np.uint8)[offsets[0] : offsets[-1]], offsets - offsets[0]


def _tokenize(texts: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spans of `_TOKEN` tokens: (bytes, starts, ends, text of each token).

    Byte classes come from comparisons, not table lookups: on numpy, a lookup per byte
    costs about 40 times a comparison."""
    data, offsets, fast = _texts_bytes(texts)
    if not len(data):
        nothing = np.zeros(0, np.int64)
        return data, nothing, nothing, nothing
    # uint8 arithmetic wraps, so "x - lo < n" tests lo <= x < lo + n in two cheap passes
    letter = ((data | 0x20) - ord("a")) < 26  # either case
    data = data | (letter.view(np.uint8) << 5)  # lowercase: what casefold does to ASCII
    backslash = data == ord("\\")
    # "\," "\(" "\$" ... become spaces (in the fast-path texts; a text ends in a newline, so
    # the byte after a backslash is always in the same text)
    hit = np.flatnonzero(backslash)
    hit = hit[_SEPARATOR[data[hit + 1]]] if len(hit) else hit
    hit = hit[fast[np.searchsorted(offsets, hit, side="right") - 1]]
    data[hit] = data[hit + 1] = ord(" ")
    backslash[hit] = False
    digit = (data - ord("0")) < 10
    high = data >= 0x80
    command = backslash.copy()
    command[:-1] &= letter[1:]
    # a symbol: printable ASCII but not a letter, digit, backslash or "$" (a space, as in
    # normalize_text)
    symbol = ((data - 33) < 94) & ~(letter | digit | backslash | (data == ord("$")))
    start = command | symbol | (data >= 0xC0)
    start[0] |= letter[0] | digit[0]
    start[1:] |= (letter[1:] & ~(letter[:-1] | backslash[:-1])) | (digit[1:] & ~digit[:-1])
    inside = command | letter | digit | symbol | high
    end = inside.copy()  # a token ends where the next byte starts another or is outside
    end[:-1] &= start[1:] | ~inside[1:]
    starts, ends = np.flatnonzero(start), np.flatnonzero(end) + 1
    per_text = np.diff(np.searchsorted(starts, offsets))
    owner = np.repeat(np.arange(len(fast)), per_text)
    return data, starts, ends, owner


def _hash_spans(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """`token_hash` of every ``data[starts[i]:ends[i]]``, vectorized."""
    padded = np.concatenate((data, np.zeros(8, np.uint8)))
    words = np.ndarray((len(data),), "<u8", padded, 0, (1,))  # 8 bytes from each position
    lengths = ends - starts
    out: np.ndarray = lengths.astype(np.uint64) * _LEN_MUL + _LEN_ADD
    out ^= words[starts] & _WORD_MASK.take(np.minimum(lengths, 8))
    fmix64(out)
    longer = np.flatnonzero(lengths > 8)  # a word of 9 letters or more: the next 8 bytes ...
    for k in range(1, 8):
        longer = longer[lengths[longer] > 8 * k]
        if not len(longer):
            break
        rest = np.minimum(lengths[longer] - 8 * k, 8)
        out[longer] = fmix64(out[longer] ^ (words[starts[longer] + 8 * k] & _WORD_MASK[rest]))
    for i in np.flatnonzero(lengths > 64):  # rare: long runs of letters or digits
        out[i] = token_hash(bytes(data[starts[i] : ends[i]]).decode())
    return out


class _Tokens(NamedTuple):
    hashes: np.ndarray  # uint64 per token (after `_TOKEN_SAME`)
    offsets: np.ndarray  # int64 per text + 1
    numbers: np.ndarray  # uint64 per text
    source: np.ndarray  # bytes the tokens' text can be read from ...
    starts: np.ndarray  # ... token i is source[starts[i]:ends[i]]
    ends: np.ndarray


def _tokens(texts: pl.Series, spans: bool = False) -> _Tokens:
    """`math_tokens` of every text, as hashes (and, with ``spans``, where their text is)."""
    data, starts, ends, owner = _tokenize(texts)
    hashes = _hash_spans(data, starts, ends)
    first = data[starts]
    maybe = np.flatnonzero(
        (first < ord("0")) | ((first > ord("9")) & (first < ord("a"))) | (first > ord("z"))
    )  # special tokens are \commands and symbols: look them up only there
    at = np.searchsorted(_SPECIAL_KEYS, hashes[maybe]).clip(max=len(_SPECIAL_KEYS) - 1)
    hit = _SPECIAL_KEYS[at] == hashes[maybe]
    maybe, at = maybe[hit], at[hit]
    action = _SPECIAL_ACTION[at]
    replace = action == _REPLACE
    hashes[maybe[replace]] = _SPECIAL_TARGET[at[replace]]
    drop = np.zeros(len(hashes), bool)
    drop[maybe[action == _DROP_TOKEN]] = True
    is_end = np.zeros(len(hashes), bool)
    is_end[maybe[action == _END]] = True
    kept = np.flatnonzero(~drop)
    keep = _without_instructions(hashes[kept], owner[kept], is_end[kept], first[kept])
    kept = kept[keep]
    hashes, owner, first = hashes[kept], owner[kept], first[kept]
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=len(texts)), out=offsets[1:])
    # `numbers`, a multiset: the sum of each number token's hash, marked when it has a sign
    num = np.flatnonzero((first >= ord("0")) & (first <= ord("9")))
    before = np.maximum(num - 1, 0)
    signed = (num > 0) & (hashes[before] == _MINUS) & (owner[before] == owner[num])
    mixed = np.zeros(len(hashes), np.uint64)
    mixed[num] = fmix64(hashes[num] ^ np.where(signed, _SIGN, _U64(0)))
    numbers = _segment_sum(mixed, offsets)
    if not spans:
        return _Tokens(hashes, offsets, numbers, data, starts[:0], ends[:0])
    # a replaced token's text is read from the special tokens' texts, stored after `data`
    starts, ends = starts[kept], ends[kept]
    special = np.full(len(drop), -1)
    special[maybe] = at
    special = special[kept]
    moved = np.flatnonzero(special >= 0)
    moved = moved[_SPECIAL_ACTION[special[moved]] == _REPLACE]
    starts[moved] = len(data) + _SPECIAL_START[special[moved]]
    ends[moved] = len(data) + _SPECIAL_END[special[moved]]
    return _Tokens(hashes, offsets, numbers, np.concatenate((data, _SPECIAL_BYTES)), starts, ends)


def _without_instructions(
    hashes: np.ndarray, owner: np.ndarray, is_end: np.ndarray, first: np.ndarray
) -> np.ndarray:
    """Which tokens `_strip_instructions` keeps (sentence ends never); ``first`` is each
    token's first byte (a digit: a number)."""
    n = len(hashes)
    content = ~is_end
    marker = np.zeros(n, bool)
    for m in _MARKER_HASHES:
        k = len(m)
        hit = hashes[: n - k + 1] == m[0]
        for j in range(1, k):
            hit &= hashes[j : n - k + 1 + j] == m[j]
        hit &= owner[: n - k + 1] == owner[k - 1 :]  # within one text (a sentence end between
        marker[: len(hit)] |= hit  # two tokens is a token too, so no marker spans sentences)
    if not marker.any():  # most texts: nothing to strip
        return content
    opens = np.ones(n, bool)  # a token that opens a sentence
    opens[1:] = (owner[1:] != owner[:-1]) | is_end[:-1]
    sentence = np.cumsum(opens) - 1
    flagged = np.zeros(int(sentence[-1]) + 1, bool)
    flagged[sentence[marker]] = True
    is_num = (first >= ord("0")) & (first <= ord("9"))
    flagged[sentence[is_num & flagged[sentence]]] = False  # a sentence with a number stays
    kept = content & ~flagged[sentence]
    n_texts = int(owner[-1]) + 1
    lost = np.bincount(owner[content], minlength=n_texts) > 0
    lost &= np.bincount(owner[kept], minlength=n_texts) == 0  # left with nothing: keep all
    return np.where(lost[owner], content, kept)


def _grams(items: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the n-grams of each text's items (one gram of all items when fewer than n)."""
    lengths = np.diff(offsets)
    count = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    first = _ragged(offsets[:-1], count)
    out = np.zeros(len(offsets), np.int64)
    np.cumsum(count, out=out[1:])
    short = np.flatnonzero((lengths > 0) & (lengths < n))  # rare: one gram of all their items
    run_lengths = None
    if len(short):
        run_lengths = np.full(len(first), n)
        run_lengths[out[short]] = lengths[short]
    return gram_hashes(items, n, first, run_lengths), out


def shingles(
    texts: Sequence[str | None] | pl.Series, n: int = 3, kind: Literal["word", "char"] = "word"
) -> Shingles:
    """Shingles of many texts at once: hashes of their word (or character) n-grams.

    Words are `math_tokens`; characters are those of the tokens joined by single spaces. A
    text with fewer than ``n`` of them has one shingle of all of them; an empty or null
    text has none. ``numbers`` hashes each text's `numbers` (`number_keys`), so that a problem
    with its numbers changed can be told apart however similar its words are.

    >>> s = shingles(["Find $x$ if $2x = 6$.", "find x if 2x=6", None], n=3)
    >>> s.offsets.tolist(), s.hashes[0:5].tolist() == s.hashes[5:10].tolist()
    ([0, 5, 10, 10], True)
    >>> bool(s.numbers[0] == s.numbers[1] != shingles(["Find x if 2x = 8."]).numbers[0])
    True
    """
    if not 1 <= n <= MAX_GRAM:
        raise ValueError(f"shingle size n={n}: expected 1 to {MAX_GRAM}")
    tok = _tokens(text_series(texts).fill_null(""), spans=kind == "char")
    if kind == "word":
        grams, offsets = _grams(tok.hashes, tok.offsets, n)
        return Shingles(grams, offsets, tok.numbers)
    if kind != "char":
        raise ValueError(f"shingle kind={kind!r}: expected 'word' or 'char'")
    # characters of the tokens joined by spaces: each token's bytes, then a space unless last
    per_text = np.diff(tok.offsets)
    last = np.zeros(len(tok.hashes), bool)
    last[tok.offsets[1:][per_text > 0] - 1] = True
    lengths = tok.ends - tok.starts
    spans = lengths + ~last
    index = _ragged(tok.starts, spans)
    within = np.arange(len(index)) - np.repeat(np.cumsum(spans) - spans, spans)
    source = np.concatenate((tok.source, [ord(" ")])).astype(np.uint8)
    index[within == np.repeat(lengths, spans)] = len(source) - 1
    chars = _BYTE_HASH[source[index]]
    text_of_token = np.repeat(np.arange(len(per_text)), per_text)
    offsets = np.zeros(len(per_text) + 1, np.int64)
    np.cumsum(np.bincount(text_of_token, spans, len(per_text)).astype(np.int64), out=offsets[1:])
    grams, offsets = _grams(chars, offsets, n)
    return Shingles(grams, offsets, tok.numbers)


def number_keys(texts: Sequence[str | None] | pl.Series) -> np.ndarray:
    """Per text, a 64-bit hash of its `numbers` (0: it has none; so has an empty or null
    text): two texts have the same numbers when their keys are equal. Vectorized, as
    `shingles`, which gives the same keys as ``numbers``.

    >>> k = number_keys(["Find x if 2x = 6 and y = -1.", "If y=-1 and 2x=6, find x.", "Find x."])
    >>> bool(k[0] == k[1]), k[2], number_keys(["Find x if 2x = 6 and y = 1."])[0] == k[0]
    (True, np.uint64(0), np.False_)
    """
    return _tokens(text_series(texts).fill_null("")).numbers


def text_series(texts: Sequence[str | None] | pl.Series) -> pl.Series:
    """``texts`` as a Polars String series (nulls kept), the input of the vectorized paths."""
    return (
        texts.cast(pl.String) if isinstance(texts, pl.Series) else pl.Series(texts, dtype=pl.String)
    )
