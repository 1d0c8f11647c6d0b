r"""Reward functions in TRL's form: ``reward(completions=..., **columns) -> list[float | None]``.

TRL's ``GRPOTrainer`` calls each reward function once per batch as
``reward(prompts=..., completions=..., completion_ids=..., trainer_state=..., log_extra=...,
log_metric=..., **columns)``, every other column of the dataset as a keyword list. A
completion is a string (standard format) or a list of messages (conversational:
``[{"role": "assistant", "content": ...}]``); the answer is read from the last assistant
message. A reward of None means "not applicable" (TRL turns it into NaN: the other
reward functions decide that completion).

Grading is curate's one path, `curate.verify_many`: called once per batch, so the
symbolic checks run in parallel in the checker pool, each under a time limit whose
worker is killed on overrun; it works from any thread and from async code (unlike
math-verify's own ``signal.alarm`` timer, which needs the main thread).

>>> accuracy_reward([r"The answer is $\boxed{4}$.", "It is 5."], answer=["4", "4"])
[1.0, 0.0]
>>> think_format_reward(["<think>2+2</think>The answer is 4.", "The answer is 4."])
[1.0, 0.0]
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

from curate.errors import ConfigError, InputError
from curate.verification import DEFAULT_TIMEOUT, Verdict, VerifyOptions, verify_many

REWARD_OPTIONS = VerifyOptions(percent="value")
"""The reading and comparison rules of the rewards: curate's defaults, except that ``50\\%``
equals only 0.5 (the default would also take 50, so "1%" could not be told from 1)."""
GOLD_COLUMNS = ("answer", "ground_truth", "solution", "reward_model")
"""Columns the gold answer is looked for in, in order: ``answer`` (curate's ``rl`` export),
``ground_truth`` and ``solution`` (common TRL datasets; a whole solution is fine, its
``\\boxed{}`` or ``####`` answer is read), ``reward_model`` (verl's ``{"ground_truth": ...}``)."""
UNVERIFIABLE = frozenset({"gold_unparseable", "timeout", "error"})
"""Verdicts that say "could not check" rather than anything about the completion: the
gold answer is missing or unreadable, the check ran out of time, or the checker failed."""
OpenedIn = Literal["completion", "prompt", "either"]


def completion_text(completion: str | Sequence[Mapping[str, Any]] | None) -> str:
    """The text of one completion: a string as it is; for a list of messages, the content
    of the last assistant message (content blocks are joined).

    >>> completion_text([{"role": "assistant", "content": "Hi"}])
    'Hi'
    """
    if completion is None or isinstance(completion, str):
        return completion or ""
    messages = [m for m in completion if isinstance(m, Mapping)]
    said = [m for m in messages if m.get("role", "assistant") == "assistant"]
    if not said:
        return ""
    content = said[-1].get("content")
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}, ...]
        return "".join(
            str(b.get("text") or "") for b in content if isinstance(b, Mapping)
        )  # images and tool calls say nothing here
    return "" if content is None else str(content)


def _gold(value: Any) -> str | None:
    """A gold answer from a column value (verl's ``reward_model`` is a struct)."""
    if isinstance(value, Mapping):
        value = value.get("ground_truth")
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def gold_answers(
    columns: Mapping[str, Any], n: int, gold_column: str | None = None
) -> list[str | None]:
    """The ``n`` gold answers from the dataset's columns (see `GOLD_COLUMNS`).

    >>> gold_answers({"reward_model": [{"style": "rule", "ground_truth": "2"}]}, 1)
    ['2']
    """
    names = (gold_column,) if gold_column else GOLD_COLUMNS
    name = next((c for c in names if columns.get(c) is not None), None)
    if name is None:
        given = sorted(k for k in columns if k not in ("trainer_state", "log_extra", "log_metric"))
        raise InputError(
            f"the reward found no gold answers: expected a column named "
            f"{' or '.join(repr(c) for c in names)}, got the columns {given}; "
            "name the column with make_accuracy_reward(gold_column=...)"
        )
    values = list(columns[name])
    if len(values) != n:
        raise InputError(f"the column {name!r} has {len(values)} values for {n} completions")
    return [_gold(v) for v in values]


def reward_of(verdict: Verdict, unverifiable: float | None = 0.0) -> float | None:
    """1.0 for an equivalent answer, 0.0 for a different one or none, ``unverifiable``
    when it could not be checked (see `UNVERIFIABLE`).

    >>> reward_of(Verdict("timeout"), unverifiable=None) is None
    True
    """
    if verdict.equivalent:
        return 1.0
    return unverifiable if verdict.status in UNVERIFIABLE else 0.0


class _Accuracy:
    """What the two accuracy rewards share: their settings and the grading of one batch."""

    def __init__(
        self,
        *,
        options: VerifyOptions | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        unverifiable: float | None = 0.0,
        gold_column: str | None = None,
        name: str = "accuracy_reward",
        workers: int | None = None,
    ) -> None:
        if not isinstance(options, (VerifyOptions, type(None))):
            raise ConfigError(f"options={options!r}: expected a curate.VerifyOptions or None")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ConfigError(f"timeout={timeout!r}: expected seconds > 0")
        if unverifiable is not None and not isinstance(unverifiable, (int, float)):
            raise ConfigError(f"unverifiable={unverifiable!r}: expected a number or None")
        self.options = options or REWARD_OPTIONS
        self.timeout = float(timeout)
        self.unverifiable = None if unverifiable is None else float(unverifiable)
        self.gold_column = gold_column
        self.__name__ = name  # TRL logs each reward under its function's name
        self.workers = workers

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.__name__!r}, timeout={self.timeout}, "
            f"unverifiable={self.unverifiable}, gold_column={self.gold_column!r})"
        )

    def verdicts(self, completions: Sequence[Any], **columns: Any) -> list[Verdict]:
        """The verdict on each completion against its gold answer (one `verify_many` call)."""
        golds = gold_answers(columns, len(completions), self.gold_column)
        texts = [completion_text(c) for c in completions]
        return verify_many(
            zip(golds, texts, strict=True),
            options=self.options,
            timeout=self.timeout,
            workers=self.workers,
        )

    def _rewards(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        log_extra, log_metric = kwargs.pop("log_extra", None), kwargs.pop("log_metric", None)
        verdicts = self.verdicts(completions, **kwargs)
        rewards = [reward_of(v, self.unverifiable) for v in verdicts]
        if callable(log_extra):  # columns of TRL's completions table
            log_extra(f"{self.__name__}/read", [v.pred or "" for v in verdicts])
            log_extra(f"{self.__name__}/verdict", [v.status for v in verdicts])
        if callable(log_metric) and verdicts:
            unchecked = sum(v.status in UNVERIFIABLE for v in verdicts)
            log_metric(f"{self.__name__}/unverifiable", unchecked / len(verdicts))
        return rewards


class AccuracyReward(_Accuracy):
    r"""A configured accuracy reward for TRL (see `make_accuracy_reward`); picklable.

    >>> reward = AccuracyReward(gold_column="gt", name="acc")
    >>> reward(completions=[[{"role": "assistant", "content": r"\boxed{12}"}]], gt=["12"])
    [1.0]
    """

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return self._rewards(completions, **kwargs)


class AsyncAccuracyReward(_Accuracy):
    """`AccuracyReward` as a coroutine: the grading runs in a thread, never blocking the
    event loop (TRL runs async reward functions concurrently on its own loop).

    >>> import asyncio
    >>> asyncio.run(AsyncAccuracyReward()(completions=["so 3"], answer=["3"]))
    [1.0]
    """

    async def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return await asyncio.to_thread(self._rewards, completions, **kwargs)


@overload
def make_accuracy_reward(
    *,
    options: VerifyOptions | None = ...,
    timeout: float = ...,
    unverifiable: float | None = ...,
    gold_column: str | None = ...,
    name: str = ...,
    asynchronous: Literal[False] = ...,
    workers: int | None = ...,
) -> AccuracyReward: ...
@overload
def make_accuracy_reward(
    *,
    options: VerifyOptions | None = ...,
    timeout: float = ...,
    unverifiable: float | None = ...,
    gold_column: str | None = ...,
    name: str = ...,
    asynchronous: Literal[True],
    workers: int | None = ...,
) -> AsyncAccuracyReward: ...
def make_accuracy_reward(
    *,
    options: VerifyOptions | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    unverifiable: float | None = 0.0,
    gold_column: str | None = None,
    name: str = "accuracy_reward",
    asynchronous: bool = False,
    workers: int | None = None,
) -> AccuracyReward | AsyncAccuracyReward:
    r"""An accuracy reward for TRL's ``GRPOTrainer(reward_funcs=[...])``, configured.

    - ``options``: how answers are read and compared (default `REWARD_OPTIONS`:
      ``VerifyOptions(percent="value")``);
    - ``timeout``: seconds per symbolic check (its worker is killed past it);
    - ``unverifiable``: the reward when a completion could not be checked (no or an
      unreadable gold answer, a timeout, a checker error): 0.0 by default, as DeepScaleR
      does, or None to leave the completion to the other reward functions;
    - ``gold_column``: the column of gold answers (default: the first of `GOLD_COLUMNS`
      the dataset has);
    - ``name``: the function's ``__name__`` (TRL logs ``rewards/<name>/mean``);
    - ``asynchronous``: return a coroutine function (`AsyncAccuracyReward`);
    - ``workers``: checker processes (default one per core).

    1.0 for an answer equivalent to the gold, 0.0 for a different one or none. A
    completion cut by the length limit (TRL says nothing of it to the reward) usually
    has no final answer, so gets 0.0: for an R1-style model one still inside
    ``<think>`` has none by rule; set ``mask_truncated_completions=True`` in
    ``GRPOConfig`` to leave such completions out of the loss instead.

    >>> reward = make_accuracy_reward(gold_column="solution", unverifiable=None)
    >>> reward.__name__, reward([r"$\boxed{1}$", "1"], solution=["1", None])
    ('accuracy_reward', [1.0, None])
    """
    cls = AsyncAccuracyReward if asynchronous else AccuracyReward
    return cls(
        options=options,
        timeout=timeout,
        unverifiable=unverifiable,
        gold_column=gold_column,
        name=name,
        workers=workers,
    )


_ACCURACY = AccuracyReward()


def accuracy_reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    r"""1.0 where a completion's final answer equals the gold answer, else 0.0.

    The reward function for ``GRPOTrainer(reward_funcs=[curate.reward.accuracy_reward])``:
    the gold is read from the column ``answer`` (curate's ``rl`` export), ``ground_truth``,
    ``solution`` or ``reward_model`` (verl's struct); completions may be strings or lists
    of messages. A completion that could not be checked (no gold answer, a timeout) gets
    0.0; see `make_accuracy_reward` to change that, the rules or the column.

    >>> accuracy_reward([[{"role": "assistant", "content": r"So $x = \boxed{\frac12}$"}]],
    ...                 ground_truth=["0.5"])
    [1.0]
    """
    return _ACCURACY(completions, **kwargs)


async def accuracy_reward_async(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """`accuracy_reward` as a coroutine function (the grading runs in a thread).

    >>> import asyncio
    >>> asyncio.run(accuracy_reward_async(["It is 5."], answer=["5"]))
    [1.0]
    """
    return await asyncio.to_thread(_ACCURACY, completions, **kwargs)


_OPEN, _CLOSE = "<think>", "</think>"
_TAG = re.compile(r"</?think>")


class ThinkFormatReward:
    """The DeepSeek-R1 format reward, configured (see `make_think_format_reward`); picklable.

    >>> ThinkFormatReward(opened_in="prompt")(["thinking...</think>The answer is 4."])
    [1.0]
    """

    def __init__(
        self, *, opened_in: OpenedIn = "completion", name: str = "think_format_reward"
    ) -> None:
        if opened_in not in ("completion", "prompt", "either"):
            raise ConfigError(
                f"opened_in={opened_in!r}: expected 'completion', 'prompt' or 'either'"
            )
        self.opened_in: OpenedIn = opened_in
        self.__name__ = name

    def __repr__(self) -> str:
        return f"ThinkFormatReward(opened_in={self.opened_in!r}, name={self.__name__!r})"

    def follows(self, text: str) -> bool:
        """Whether one completion has the structure (see `make_think_format_reward`)."""
        body = text.lstrip()
        opened = body.startswith(_OPEN)
        if opened:
            body = body[len(_OPEN) :]
        if opened != (self.opened_in == "completion") and self.opened_in != "either":
            return False
        tags = _TAG.findall(body)
        return tags == [_CLOSE] and bool(body.split(_CLOSE, 1)[1].strip())

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return [1.0 if self.follows(completion_text(c)) else 0.0 for c in completions]


def make_think_format_reward(
    *, opened_in: OpenedIn = "completion", name: str = "think_format_reward"
) -> ThinkFormatReward:
    """A reward of 1.0 for a completion in DeepSeek-R1's format, else 0.0: one
    ``<think>...</think>`` block, then a non-empty answer, and no other think tag.

    ``opened_in`` says where the opening ``<think>`` is: ``"completion"`` (the completion
    starts with it), ``"prompt"`` (the chat templates of the R1-distilled models end the
    generation prompt with ``<think>\\n``, so the completion starts inside the block and
    has only ``</think>``), or ``"either"``. ``name`` is the function's ``__name__``.

    >>> make_think_format_reward(opened_in="either")(["a</think>b", "<think>a</think>b"])
    [1.0, 1.0]
    """
    return ThinkFormatReward(opened_in=opened_in, name=name)


_THINK_FORMAT = ThinkFormatReward()


def think_format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 for a completion ``<think>...</think>`` then a non-empty answer (no other think
    tag), else 0.0. For models whose prompt opens the block, see `make_think_format_reward`.

    >>> think_format_reward(["<think>\\nhm\\n</think>\\n\\n4", "<think>hm</think>", "4"])
    [1.0, 0.0, 0.0]
    """
    return _THINK_FORMAT(completions, **kwargs)
