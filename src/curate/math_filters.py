r"""Common filters of math problem pools: language, figures, multiple choice, proofs, length.

Each rule is a pure function of a text (usable on its own, without a run or SQL) that
returns why it fires, or None; each has a `Filter` stage that rejects the rows it fires
on, with the function's answer as the reject detail:

=========================  ==============================  ================================
function                   stage                           reject reason
=========================  ==============================  ================================
`script_shares`,           `LanguageFilter`                ``non_latin_script``,
`english_share`                                            ``not_english``
`figure_cue`               `FigureFilter`                  ``needs_figure``
`choice_cue`               `MultipleChoiceFilter`          ``multiple_choice``
`proof_cue`                `ProofFilter`                   ``proof``
`count_tokens`             `LengthFilter`                  ``too_short``, ``too_long``
=========================  ==============================  ================================

No model is loaded: the language rule counts letters by Unicode script and English
function words, outside the LaTeX; the others are regular expressions, measured on MATH,
DeepScaleR and DAPO in ``benchmarks/bench_math_filters.py``.

>>> figure_cue("In the diagram below, $AB = 3$. Find $BC$.")
'In the diagram'
>>> choice_cue(r"What is $1+1$? $\textbf{(A)}\ 1 \qquad \textbf{(B)}\ 2$") is not None
True
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import polars as pl

from curate.errors import ConfigError
from curate.stage import Filter, StageContext

# --- language ---------------------------------------------------------------------------

_MATH = re.compile(
    r"\[asy\].*?\[/asy\]|\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]"
    r"|\\begin\{(\w+\*?)\}.*?\\end\{\1\}|\\[a-zA-Z]+",
    re.S,
)
_WORD = re.compile(r"[^\W\d_]{2,}")
_WORD_ANY = re.compile(r"[^\W\d_]+")
_ENGLISH = """a an the of and or to in on at for with by from into as is are be was were been
being it its this that these those there here if then than so not no what which who whom
whose how when where why find let each all any some many much number numbers value values
given such compute determine suppose has have had can must will would should may one two
three first second other their they we you he she his her our your more most less least
every both only also"""
ENGLISH_WORDS = frozenset(_ENGLISH.split())
"""Common English words (function words and the stock verbs of problems): `english_share`
counts them."""


def prose(text: str) -> str:
    r"""``text`` without its LaTeX: math between ``$``, ``\(`` ``\)``, ``\[`` ``\]``,
    environments, ``[asy]`` drawings and ``\commands`` (variable names are no language).

    >>> prose(r"Let $x^2 = \frac{1}{2}$ and \(y\) be real.")
    'Let   and   be real.'
    """
    return _MATH.sub(" ", text)


_ALPHABETS = frozenset({"LATIN", "GREEK", "CYRILLIC", "ARMENIAN", "GEORGIAN"})
"""Scripts whose letters count only in words of three letters or more: a lone ``x``, ``ab``
or ``α`` outside ``$`` is a variable, not language."""


def script_shares(text: str) -> dict[str, float]:
    r"""The share of each Unicode script among the letters of ``text`` outside its LaTeX
    (the first word of the letter's Unicode name: ``LATIN``, ``CJK``, ``CYRILLIC``,
    ``GREEK`` ...), largest first; empty when it has no letter. Letters of alphabets
    (`_ALPHABETS`) count only in words of three letters or more, so that the variables of
    a formula written without ``$`` (common in Chinese problems) are not taken for English.

    >>> script_shares("设 $p$ 是正数, find it")
    {'CJK': 0.5, 'LATIN': 0.5}
    >>> script_shares("已知 a+b=2，求 ab 的值")
    {'CJK': 1.0}
    >>> script_shares("$1+1$")
    {}
    """
    counts: Counter[str] = Counter()
    for word in _WORD_ANY.findall(prose(text)):
        if word.isascii():
            if len(word) >= 3:
                counts["LATIN"] += len(word)
            continue
        for ch in word:
            script = "LATIN" if ch.isascii() else unicodedata.name(ch, "OTHER ?").split(" ")[0]
            if len(word) >= 3 or script not in _ALPHABETS:
                counts[script] += 1
    total = sum(counts.values())
    return {s: n / total for s, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def english_share(text: str) -> tuple[float, int]:
    """(share of `ENGLISH_WORDS` among the words of two letters or more outside the
    LaTeX, number of such words).

    >>> english_share("Find the value of $x$ if $2x = 4$.")
    (1.0, 5)
    >>> english_share("Trouver la valeur de x si le triangle est rectangle.")[0] < 0.2
    True
    """
    words = [w.lower() for w in _WORD.findall(prose(text))]
    if not words:
        return 0.0, 0
    return sum(w in ENGLISH_WORDS for w in words) / len(words), len(words)


def language_cue(
    text: str, *, min_latin: float = 0.5, min_english: float = 0.05, min_words: int = 8
) -> tuple[str, str] | None:
    """``(reason, detail)`` when ``text`` is not English by `LanguageFilter`'s rule, else
    None (see there for the options).

    >>> language_cue("已知 $x+1=2$，求 $x$ 的值。")
    ('non_latin_script', 'latin letters 0.00, main script CJK 1.00')
    >>> language_cue("Combien de triangles ont un angle droit dans cette figure carrée ?")
    ('not_english', 'english words 0.00 of 11')
    >>> language_cue("Find $x$.") is None
    True
    """
    shares = script_shares(text)
    latin = shares.get("LATIN", 0.0)
    if shares and latin < min_latin:
        main, share = next(iter(shares.items()))
        return "non_latin_script", f"latin letters {latin:.2f}, main script {main} {share:.2f}"
    if min_english > 0:
        english, words = english_share(text)
        if words >= min_words and english < min_english:
            return "not_english", f"english words {english:.2f} of {words}"
    return None


# --- figures ------------------------------------------------------------------------------

_DRAWING = re.compile(
    r"\[asy\]|\\begin\{(?:asy|tikzpicture|picture)\}|\\includegraphics|<img\b|!\[[^\]]*\]\(",
    re.I,
)
_FIGURE_WORD = r"(?:figure|diagram|picture|drawing|image|illustration|graph)s?"
_REFERENCE = re.compile(
    r"\bas\s+(?:is\s+)?(?:shown|pictured|illustrated|depicted|drawn)\b"
    r"|\b(?:shown|pictured|illustrated|depicted|drawn|sketched)\s+"
    r"(?:below|above|here|at\s+(?:the\s+)?(?:right|left)|to\s+the\s+(?:right|left))\b"
    rf"|\b(?:the|this|following|accompanying|adjacent|adjoining|attached)\s+{_FIGURE_WORD}"
    r"(?=\s+(?:below|above|shows|show|has|is|are)\b|\s*[,.:;]|\s+(?:of|at)\s+(?:the\s+)?right)"
    r"|\b(?:in|from|see|on|using)\s+(?:the\s+)?(?:figure|diagram|picture|fig\.)"
    r"|\b(?:figure|fig\.)\s*\d",
    re.I,
)


_CONTENT = re.compile(r"\\begin\{(?:tabular|array|[bpvBV]?matrix)\}")
"""A table or matrix written out: what "shown below" points at is in the text."""
_FIGURE_NOUN = re.compile(rf"\b{_FIGURE_WORD}\b|\bfig\.", re.I)


def figure_cue(text: str, *, drawings: bool = True) -> str | None:
    r"""What in ``text`` says it needs a figure: a drawing (``[asy]`` code, TikZ, an image
    link) or words that point at one ("as shown", "in the diagram below", "shown above",
    "Figure 2"); None when nothing does.

    With ``drawings=False`` a problem that carries its drawing as code (MATH's ``[asy]``
    blocks) is not flagged, even when its words point at it: the figure is there.

    >>> figure_cue("[asy] draw((0,0)--(1,1)); [/asy] Find the area.")
    '[asy]'
    >>> figure_cue("As shown, $ABCD$ is a square.")
    'As shown'
    >>> figure_cue("Help Bob figure out the cost of 3 pens."), figure_cue("Graph $y=x^2$.")
    (None, None)
    >>> figure_cue(r"The values are shown below: \begin{tabular}{c|c} 1 & 2 \end{tabular}")
    >>> figure_cue("[asy] draw((0,0)--(1,1)); [/asy] As shown, find it.", drawings=False)
    """
    drawing = _DRAWING.search(text)
    if drawing is not None:
        return drawing.group(0) if drawings else None
    for found in _REFERENCE.finditer(text):
        cue = " ".join(found.group(0).split())
        if _FIGURE_NOUN.search(cue) or not _CONTENT.search(text, found.end()):
            return cue  # "shown below" then a table: the table is what is shown
    return None


# --- multiple choice --------------------------------------------------------------------

_LABEL = r"(?:\\(?:textbf|mathrm|text|mathbf|qquad)\s*\{?\s*)?"
_CHOICE_PAREN = re.compile(
    rf"(?<![\w)]){_LABEL}\(\s*A\s*\).+?(?<![\w)]){_LABEL}\(\s*B\s*\)", re.S
)  # (A) ... (B), \textbf{(A)} ... \textbf{(B)}; not f(A) ... f(B)
_ASY = re.compile(r"\[asy\].*?(?:\[/asy\]|$)", re.S)
_CHOICE_LINE = re.compile(
    r"(?:^|\n|\s{2,}|\$\s*)A\s*[.):：]\s*\S.*?(?:\n|\s{2,}|\$\s*|\s)B\s*[.):：]\s*\S.*?"
    r"(?:\n|\s{2,}|\$\s*|\s)C\s*[.):：]\s*\S",
    re.S,
)  # A. ... B. ... C. (three, so that "point A. B is" is not one)
_CHOICE_WORDS = re.compile(
    r"(?:^|(?<=[\n.?!:])\s*)(?:answer\s+choices|options|choices)\s*:"
    r"|\b(?:enter|type|give|select|choose)\s+(?:the\s+)?letters?\b"
    r"|\bcorrect\s+(?:option|choice)\b",
    re.I,
)


def choice_cue(text: str) -> str | None:
    r"""What in ``text`` makes it a multiple-choice question: lettered options
    ("(A) ... (B)", ``\textbf{(A)}``, "A. ... B. ... C."), or words ("Options:",
    "Answer choices:", "Enter the letter of the correct option"); None otherwise.

    >>> choice_cue("Which is prime? (A) 4 (B) 6 (C) 7")
    '(A) ... (B)'
    >>> choice_cue("Pick one.\nA. 1\nB. 2\nC. 3")
    'A. ... B. ... C.'
    >>> choice_cue("Points A. B and C are on a line; find AB.") is None
    True
    >>> choice_cue("[asy] dot(A); dot(B); [/asy] Find $f(A) + f(B)$.") is None
    True
    """
    text = _ASY.sub(" ", text)  # drawing code: dot(A); dot(B);
    if _CHOICE_PAREN.search(text):
        return "(A) ... (B)"
    if _CHOICE_LINE.search(text):
        return "A. ... B. ... C."
    found = _CHOICE_WORDS.search(text)
    return " ".join(found.group(0).split()) if found else None


# --- proofs -------------------------------------------------------------------------------

_PROOF_ASK = re.compile(
    r"\b(?:prove|show|demonstrate|verify|explain\s+why|justify)\s+that\b"
    r"|\bprove\b|\bproof\b|证明|求证",
    re.I,
)
_PROOF_ANSWER = re.compile(
    r"^\s*(?:\\text\{\s*)?(?:proof|see\s+(?:the\s+)?(?:proof|solution|above|below)|q\.?e\.?d\.?"
    r"|shown|proved|proven|n/?a|none|true|yes)\s*\}?\s*\.?\s*$",
    re.I,
)


def proof_cue(problem: str, answer: str | None) -> str | None:
    r"""Why ``problem`` (with gold ``answer``) is a proof rather than a question with a
    final answer, or None: it asks to prove or show something ("Prove that", "Show that")
    and its answer is missing, a word such as "proof" or "shown", or prose without a
    number; or its answer is such a word whatever it asks.

    A "Show that ... and find it" problem with a real answer is not a proof.

    >>> proof_cue("Prove that there are infinitely many primes.", None)
    "asks 'Prove that', no answer"
    >>> proof_cue("Show that $n^2+n$ is even for every integer $n$.", "Proof")
    "asks 'Show that', answer 'Proof'"
    >>> proof_cue("Show that the sum is an integer and find it.", "42") is None
    True
    """
    ask = _PROOF_ASK.search(problem)
    stripped = (answer or "").strip()
    if stripped and _PROOF_ANSWER.match(stripped):
        return (f"asks {ask.group(0)!r}, " if ask else "") + f"answer {stripped[:40]!r}"
    if ask is None:
        return None
    if not stripped:
        return f"asks {ask.group(0)!r}, no answer"
    words = _WORD.findall(prose(stripped))
    if not re.search(r"\d", stripped) and len(words) >= 4:
        return f"asks {ask.group(0)!r}, prose answer"
    return None


# --- length -------------------------------------------------------------------------------

_IDEOGRAPHS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
TOKEN_PATTERN = f"[{_IDEOGRAPHS}]|[^\\W_{_IDEOGRAPHS}]+|[^\\w\\s]"
"""What `count_tokens` counts: runs of letters or digits, single symbols, and each Chinese,
Japanese or Korean character (a BPE tokenizer gives about one token to each)."""


def count_tokens(text: str) -> int:
    r"""A model-free token count: runs of letters or digits, single symbols and CJK
    characters (`TOKEN_PATTERN`), which for LaTeX-heavy problems is close to a BPE
    tokenizer's count (a word is one token, ``\frac{1}{2}`` seven).

    >>> count_tokens(r"Find $\frac{1}{2}$ of 10."), count_tokens("求 $x$ 的值")
    (14, 6)
    """
    return len(re.findall(TOKEN_PATTERN, text))


# --- stages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TextFilter(Filter):
    """A filter over one text column (``column``, by default the problem)."""

    column: str = "problem"

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def adds(self) -> tuple[str, ...]:
        return ()

    def _cues(self, batch: pl.DataFrame) -> list[tuple[str, str] | None]:
        raise NotImplementedError

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        cues = self._cues(batch)
        marked = batch.lazy().with_columns(
            pl.Series("__reason", [c[0] if c else None for c in cues], pl.String),
            pl.Series("__detail", [c[1] if c else None for c in cues], pl.String),
        )
        return self.mark(
            marked, pl.col("__reason").is_not_null(), pl.col("__reason"), pl.col("__detail")
        ).drop("__reason", "__detail")


@dataclass(frozen=True)
class LanguageFilter(_TextFilter):
    """Keep English problems: reject a problem whose letters outside the LaTeX are mostly
    of another script (``non_latin_script``: fewer than ``min_latin`` of them Latin, e.g. a
    Chinese problem), or, written in Latin letters, has at least ``min_words`` words of
    which fewer than ``min_english`` are common English words (``not_english``: French,
    Spanish, German ...). ``min_english=0`` turns the second rule off. A text with no
    letters (a bare formula) is kept. See `language_cue`.

    >>> LanguageFilter().name
    'language_filter'
    """

    min_latin: float = 0.5
    min_english: float = 0.05
    min_words: int = 8

    def __post_init__(self) -> None:
        if not (0 <= self.min_latin <= 1 and 0 <= self.min_english <= 1 and self.min_words >= 1):
            raise ConfigError(
                f"LanguageFilter(min_latin={self.min_latin}, min_english={self.min_english}, "
                f"min_words={self.min_words}): expected shares in 0..1 and min_words >= 1"
            )

    def _cues(self, batch: pl.DataFrame) -> list[tuple[str, str] | None]:
        return [
            language_cue(
                t or "",
                min_latin=self.min_latin,
                min_english=self.min_english,
                min_words=self.min_words,
            )
            for t in batch[self.column].to_list()
        ]


@dataclass(frozen=True)
class FigureFilter(_TextFilter):
    """Reject problems that need a figure (``needs_figure``, the cue as detail): an
    ``[asy]`` drawing or an image, or words that point at one ("as shown", "in the figure
    below"). ``drawings=False`` keeps problems that carry their drawing as code (MATH's
    ``[asy]``), which a text model can read. See `figure_cue`.

    >>> FigureFilter(drawings=False).name
    'figure_filter'
    """

    drawings: bool = True

    def _cues(self, batch: pl.DataFrame) -> list[tuple[str, str] | None]:
        cues = (figure_cue(t or "", drawings=self.drawings) for t in batch[self.column])
        return [("needs_figure", c) if c else None for c in cues]


@dataclass(frozen=True)
class MultipleChoiceFilter(_TextFilter):
    """Reject multiple-choice problems (``multiple_choice``, the cue as detail): lettered
    options or "Options:"-style words. A model can guess a letter, so RL rewards on them
    are noisy. See `choice_cue`.

    >>> MultipleChoiceFilter().name
    'multiple_choice_filter'
    """

    def _cues(self, batch: pl.DataFrame) -> list[tuple[str, str] | None]:
        cues = (choice_cue(t or "") for t in batch[self.column])
        return [("multiple_choice", c) if c else None for c in cues]


@dataclass(frozen=True)
class ProofFilter(_TextFilter):
    """Reject proof problems (``proof``, why as detail): "Prove that"/"Show that" with no
    answer to check, or an answer such as "Proof". Reads the ``answer`` too (a documents
    table without one counts as no answer). See `proof_cue`.

    >>> ProofFilter().reads()
    ('problem', 'answer')
    """

    def reads(self) -> tuple[str, ...]:
        return (self.column, "answer")

    def optional_reads(self) -> tuple[str, ...]:
        return ("answer",)

    def _cues(self, batch: pl.DataFrame) -> list[tuple[str, str] | None]:
        answers = (
            batch["answer"].cast(pl.String).to_list()
            if "answer" in batch.columns
            else [None] * batch.height
        )
        cues = (proof_cue(t or "", a) for t, a in zip(batch[self.column], answers, strict=True))
        return [("proof", c) if c else None for c in cues]


@dataclass(frozen=True)
class LengthFilter(Filter):
    """Reject problems shorter than ``min_length`` (``too_short``) or longer than
    ``max_length`` (``too_long``), in ``unit``: ``"chars"`` (the default) or ``"tokens"``
    (`count_tokens`, no tokenizer loaded). Either bound may be None. The defaults, 10 to
    8,000 characters, drop empty and truncated rows and pasted documents, and no problem of
    MATH, DeepScaleR or DAPO; a null text is ``too_short``.

    >>> LengthFilter(max_length=400, unit="tokens").unit
    'tokens'
    """

    min_length: int | None = 10
    max_length: int | None = 8000
    unit: Literal["chars", "tokens"] = "chars"
    column: str = "problem"

    def __post_init__(self) -> None:
        if self.unit not in ("chars", "tokens"):
            raise ConfigError(f"LengthFilter(unit={self.unit!r}): expected 'chars' or 'tokens'")
        lo, hi = self.min_length, self.max_length
        if (lo is not None and lo < 0) or (hi is not None and hi < 0):
            raise ConfigError(f"LengthFilter(min_length={lo}, max_length={hi}): expected >= 0")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"LengthFilter(min_length={lo}, max_length={hi}): min > max")

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def adds(self) -> tuple[str, ...]:
        return ()

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        text = pl.col(self.column)
        size = (
            text.str.len_chars() if self.unit == "chars" else text.str.count_matches(TOKEN_PATTERN)
        ).fill_null(0)
        out = batch.lazy()
        if self.min_length is not None:
            detail = pl.format("{} {} < {}", size, pl.lit(self.unit), pl.lit(self.min_length))
            out = self.mark(out, size < self.min_length, "too_short", detail)
        if self.max_length is not None:
            detail = pl.format("{} {} > {}", size, pl.lit(self.unit), pl.lit(self.max_length))
            out = self.mark(out, size > self.max_length, "too_long", detail)
        return out
