r"""A toy arithmetic task and a tiny causal LM trained on it in seconds, for real generation
on a CPU without downloads (tests, ``recipes/deepdistill.py``, benchmarks).

The task: "What is 37 + 48?" (or a subtraction with a non-negative result) with operands of
1, 2 or 3 digits (the ``level``), answered reasoning-model style::

    <think>37 + 48 = 85</think> The answer is \boxed{85}.

The model is a real ``Qwen2ForCausalLM`` (2 layers, hidden 128, 2 heads of dim 64, 1 KV
head, MLP 256, 0.33M parameters, float32 safetensors) with a Qwen2-style byte-level BPE
tokenizer built locally with ``tokenizers`` (256 bytes plus the task's words; digits are
single tokens), a ChatML chat template and ``<|im_end|>`` as EOS, so it loads in
transformers (`curate.generate.hf.HFGenerator`) and in vLLM's CPU backend alike. Training
is a fixed number of AdamW steps from a seed (deterministic on one machine), loss on the
assistant reply only; the result is cached (see `toy_model`).

Measured on the 2-core CI machine (AMD EPYC, AVX2, torch 2.13 CPU, one training thread, the
machine shared with other jobs), sampled at temperature 0.6 (top-p 0.95) on 300
`toy_problems` (seed 123), scored with `curate.verify`::

    steps  training  overall  level 1  level 2  level 3
    300    23 s       8%      25%      0%       0%
    600    31 s      27%      78%      1%       0%

The model learns the single-digit facts (and copying the operands) well within these steps,
but not multi-digit carries: level 1 is mostly right, levels 2-3 nearly always wrong (with
the magnitude about right), and easy problems answered with varying confidence give the
per-problem pass rates in between that grading needs. Tests that only need the answer
format use ``steps=100`` or so.

That task is one of memorised facts: each problem is answered in one step, so a reward for
one problem teaches nothing about another. ``task="columns"`` (addition only) writes the
work out column by column, ones first, with the carries::

    <think>7+8=15 3+4+1=8</think> The answer is \\boxed{85}.

Every problem then shares one procedure (the 200 one-column sums and reading the answer
off the columns), which reinforcement learning can sharpen on some problems and carry to
unseen ones (`benchmarks/bench_learning.py --task columns`). Measured as above (300
problems of the column task, 4 samples each)::

    steps  level 1  level 2  level 3
    150     22%       0%      0%
    300     75%       0%      0%
    600    100%      15%      0%
    1200   100%      12%      0%

Level 2's misses are mostly in putting the answer together: the columns are right in 63%
of the samples at 600 steps, the answer in 15%.

>>> rows = toy_problems(3, seed=1)
>>> [sorted(r) for r in rows][0]
['answer', 'id', 'level', 'problem', 'solution']
>>> toy_problems(3, seed=1) == rows
True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from curate._progress import note
from curate._torch import torch_threads
from curate.errors import ConfigError, MissingExtraError

TOY_VERSION = "2"
"""Bump when the task, tokenizer, architecture or training changes: cached models retrain."""
STEPS = 600
"""Default number of training steps."""
LEVELS = (1, 2, 3)
OPS = ("+", "-")
Task = Literal["direct", "columns"]
TASKS: tuple[Task, ...] = ("direct", "columns")

SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
EXTRA = ("<think>", "</think>")
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
ARCH: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,  # head_dim 64: vLLM's CPU attention does not take 16
    "num_key_value_heads": 1,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}
TRAIN: dict[str, Any] = {
    "batch": 16,
    "lr": 2e-3,
    "betas": (0.9, 0.99),
    "warmup": 30,
    "weight_decay": 0.01,
    "level_weights": (3, 2, 1),
}
_MARKER = "curate-toy.json"


def _problem(rng: random.Random, level: int, op: str) -> tuple[int, str, int]:
    lo, hi = (0 if level == 1 else 10 ** (level - 1)), 10**level - 1
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    if op == "-" and a < b:
        a, b = b, a
    return a, op, b


def _row(a: int, op: str, b: int, task: Task = "direct") -> tuple[str, str, str]:
    answer = str(a + b if op == "+" else a - b)
    problem = f"What is {a} {op} {b}?"
    work = f"{a} {op} {b} = {answer}" if task == "direct" else _columns(a, b)
    solution = f"<think>{work}</think> The answer is \\boxed{{{answer}}}."
    return problem, answer, solution


def _columns(a: int, b: int) -> str:
    """Column addition, ones first, each column's carry written out: ``37 + 48`` gives
    ``7+8=15 3+4+1=8``."""
    steps, carry = [], 0
    for x, y in zip(reversed(str(a)), reversed(str(b)), strict=True):
        total = int(x) + int(y) + carry
        steps.append(f"{x}+{y}{'+1' if carry else ''}={total}")
        carry = total // 10
    return " ".join(steps)


def _check_task(task: str, ops: Sequence[str], where: str) -> None:
    if task not in TASKS:
        raise ConfigError(f"{where}(task={task!r}): expected one of {', '.join(TASKS)}")
    if task == "columns" and list(ops) != ["+"]:
        raise ConfigError(f"{where}(task='columns'): the column task is addition only: ops=['+']")


def toy_problems(
    n: int,
    *,
    seed: int = 0,
    levels: Sequence[int] = LEVELS,
    ops: Sequence[str] | None = None,
    task: Task = "direct",
) -> list[dict[str, str]]:
    r"""``n`` arithmetic problems, the same for the same arguments.

    Each row has ``id``, ``problem``, ``answer`` (the gold number), ``level`` (operand
    digits, "1" to "3": more digits, more carries, harder) and ``solution`` (the response
    the toy model is trained to give).

    ``task="direct"`` (the default) answers in one step, so each problem is a fact of its
    own; ``task="columns"`` (addition only; ``ops`` defaults to ``["+"]``) works column by
    column with the carries written out, a procedure shared by every problem, so that a
    reward for right answers can reinforce steps that unseen problems need too:

    >>> toy_problems(1, seed=3, levels=[2], task="columns")[0]["solution"]
    '<think>3+8=11 9+6+1=16</think> The answer is \\boxed{161}.'

    >>> row = toy_problems(1, seed=3, levels=[2], ops=["+"])[0]
    >>> row["problem"], row["answer"], row["level"]
    ('What is 93 + 68?', '161', '2')
    >>> row["solution"]
    '<think>93 + 68 = 161</think> The answer is \\boxed{161}.'
    """
    if not levels or any(lv not in LEVELS for lv in levels):
        raise ConfigError(
            f"toy_problems(levels={list(levels)}): expected a non-empty subset of 1, 2, 3"
        )
    ops = _ops(task) if ops is None else ops
    if not ops or any(op not in OPS for op in ops):
        raise ConfigError(f"toy_problems(ops={list(ops)}): expected a non-empty subset of '+', '-'")
    _check_task(task, ops, "toy_problems")
    rng = random.Random(f"curate-toy-problems-{seed}")
    prefix = "toy" if task == "direct" else f"toy-{task}"
    rows = []
    for i in range(n):
        level, op = rng.choice(list(levels)), rng.choice(list(ops))
        problem, answer, solution = _row(*_problem(rng, level, op), task)
        rows.append(
            {
                "id": f"{prefix}-{seed}-{i}",
                "problem": problem,
                "answer": answer,
                "level": str(level),
                "solution": solution,
            }
        )
    return rows


def _ops(task: Task) -> tuple[str, ...]:
    return ("+",) if task == "columns" else OPS


def unseen_problems(
    seen: Sequence[dict[str, str]],
    n: int,
    *,
    seed: int = 1,
    levels: Sequence[int] = (1,),
    ops: Sequence[str] | None = None,
    task: Task = "direct",
) -> list[dict[str, str]]:
    """Up to ``n`` distinct toy problems whose text is not among ``seen``'s: held-out
    problems for evaluating a model trained on ``seen`` (level 1 has only 155 distinct
    problems, so fewer may come back). They are the first such problems of
    ``toy_problems(max(4 * n, 300), seed=seed, levels=levels, ops=ops, task=task)``.

    >>> pool = toy_problems(50, seed=0, levels=[1])
    >>> fresh = unseen_problems(pool, 10)
    >>> len(fresh), {r["problem"] for r in fresh} & {r["problem"] for r in pool}
    (10, set())
    """
    known = {r["problem"] for r in seen}
    out: list[dict[str, str]] = []
    draws = toy_problems(max(4 * n, 300), seed=seed, levels=levels, ops=ops, task=task)
    for row in draws:
        if row["problem"] not in known and len(out) < n:
            known.add(row["problem"])
            out.append(row)
    return out


def wrong_answer(row: dict[str, str], rng: random.Random) -> dict[str, str]:
    r"""The row with a wrong solution: its answer plus 1 to 3 (drawn from ``rng``), in the
    reasoning and the box of the direct task, in the box only of the column task (whose
    columns stay right: the answer read off them is wrong). ``answer`` stays the true one.

    >>> row = toy_problems(1, seed=3, levels=[2], ops=["+"])[0]
    >>> wrong_answer(row, random.Random(0))["solution"]
    '<think>93 + 68 = 163</think> The answer is \\boxed{163}.'
    >>> row = toy_problems(1, seed=3, levels=[2], task="columns")[0]
    >>> wrong_answer(row, random.Random(0))["solution"]
    '<think>3+8=11 9+6+1=16</think> The answer is \\boxed{163}.'
    """
    wrong = str(int(row["answer"]) + rng.randint(1, 3))
    solution = re.sub(r"\\boxed\{[^}]*\}", lambda _: f"\\boxed{{{wrong}}}", row["solution"])
    if not row["id"].startswith("toy-columns-"):
        solution = re.sub(r"=\s*-?\d+</think>", lambda _: f"= {wrong}</think>", solution)
    return {**row, "solution": solution}


def _settings(steps: int, seed: int, task: Task) -> dict[str, Any]:
    settings = {"version": TOY_VERSION, "steps": steps, "seed": seed, "arch": ARCH, "train": TRAIN}
    if task != "direct":  # the direct task's models keep the key they had before tasks
        settings["task"] = task
    normal: dict[str, Any] = json.loads(json.dumps(settings))  # as the marker reads back
    return normal


def _key(settings: dict[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=6).hexdigest()


def default_cache_dir() -> Path:
    """Where toy models go when no path is given: ``$XDG_CACHE_HOME/curate`` (else
    ``~/.cache/curate``).

    >>> default_cache_dir().name
    'curate'
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "curate"


def _holds(path: Path, settings: dict[str, Any]) -> bool:
    try:
        marker = json.loads((path / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("settings") == settings


def toy_model(
    path: str | Path | None = None, *, steps: int = STEPS, seed: int = 0, task: Task = "direct"
) -> Path:
    """Train the toy model (or reuse it) and return its directory, loadable by
    ``AutoModelForCausalLM``/``AutoTokenizer`` and by vLLM.

    A directory that already holds a model trained with the same settings (its
    ``curate-toy.json`` says so) is reused; a toy model with other settings is replaced.
    Training goes to a temporary directory renamed into place at the end, so a killed run
    never leaves a half model, and concurrent callers (pytest workers) agree on the result.
    Without ``path`` the model goes to ``default_cache_dir() / "toy-<hash of settings>"``.

    >>> toy_model(steps=0)
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: toy_model(steps=0): expected a positive integer number of steps
    """
    if not (isinstance(steps, int) and steps > 0):
        raise ConfigError(
            f"toy_model(steps={steps!r}): expected a positive integer number of steps"
        )
    _check_task(task, _ops(task), "toy_model")
    settings = _settings(steps, seed, task)
    target = Path(path) if path is not None else default_cache_dir() / f"toy-{_key(settings)}"
    if _holds(target, settings):
        return target
    if target.exists() and not (target / _MARKER).exists() and any(target.iterdir()):
        raise ConfigError(
            f"toy_model: {target} exists and does not hold a toy model; expected an empty or "
            "missing directory (or one written by toy_model): pass another path or remove it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        note(f"training the toy model ({steps} steps, once; cached in {target}) ...")
        stats = _train(tmp, steps=steps, seed=seed, task=task)
        note(f"trained the toy model in {stats['train_seconds']:.1f} s")
        marker = {"settings": settings, **stats}
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        _install(tmp, target, settings)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _install(tmp: Path, target: Path, settings: dict[str, Any]) -> None:
    """Move a finished model into place: atomically where the target is absent or empty;
    an old toy model with other settings is moved aside first."""
    if target.exists():
        if _holds(target, settings):  # another process finished first: keep theirs
            return
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            target.rename(old) if any(target.iterdir()) else target.rmdir()
        shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.rename(target)
    except OSError:
        if not _holds(target, settings):
            raise


def _byte_chars() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in byte order (byte-level BPE)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def _tokenizer() -> Any:
    """Qwen2's byte-level BPE pipeline (its split regex: one token per digit) over a tiny
    vocabulary: the 256 bytes plus one token for each word the task uses.

    transformers 5 loads any ``qwen2`` model's tokenizer as ``Qwen2Tokenizer``, which rebuilds
    this pipeline from the saved vocabulary and merges: a tokenizer of another kind would be
    read wrongly, so this one is a Qwen2 tokenizer in all but size.
    """
    try:
        from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
        from tokenizers.models import BPE
        from transformers import PreTrainedTokenizerFast
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
    except ImportError as e:
        raise MissingExtraError("transformers", "hf") from e
    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    vocab = {c: i for i, c in enumerate(_byte_chars())}
    merges: list[tuple[str, str]] = []
    # the words of the chat template and the task, pre-tokenized as they occur in it
    texts = ["system", "user", "assistant"]
    for op in OPS:
        problem, _, solution = _row(12, op, 3)
        texts += [problem, *re.split("|".join(map(re.escape, EXTRA)), solution)]
    for word in sorted({w for t in texts for w, _ in pre.pre_tokenize_str(t)}):
        if len(word) < 2 or any(c.isdigit() for c in word):
            continue
        for k in range(2, len(word) + 1):  # merge each word from its start, one byte at a time
            if word[:k] not in vocab:
                vocab[word[:k]] = len(vocab)
                merges.append((word[: k - 1], word[k - 1]))
    core = Tokenizer(BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", fuse_unk=False))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in EXTRA])
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=ARCH["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )


def _batch(tok: Any, rng: random.Random, size: int, task: Task) -> list[tuple[Any, Any]]:
    """``size`` random problems of one level as token ids and labels (-100 outside the
    assistant reply), in two right-padded groups: a quarter whole, the rest cut after
    ``</think>`` (the constant tail is learnt from the quarter; the cut saves a quarter of
    the compute, as does drawing one level per batch, which leaves almost no padding)."""
    import torch

    level = rng.choices(LEVELS, weights=TRAIN["level_weights"])[0]
    end_think = tok.convert_tokens_to_ids("</think>")
    prompts, replies = [], []
    for _ in range(size):
        problem, _, solution = _row(*_problem(rng, level, rng.choice(_ops(task))), task)
        chat = [{"role": "user", "content": problem}]
        prompts.append(tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
        replies.append(solution + "<|im_end|>")
    p_ids = tok(prompts, add_special_tokens=False)["input_ids"]
    r_ids = tok(replies, add_special_tokens=False)["input_ids"]
    whole = max(1, size // 4)
    cut = [r[: r.index(end_think) + 1] for r in r_ids[whole:]]
    groups = []
    for ps, rs in ((p_ids[:whole], r_ids[:whole]), (p_ids[whole:], cut)):
        if not ps:
            continue
        width = max(len(p) + len(r) for p, r in zip(ps, rs, strict=True))
        ids = torch.full((len(ps), width), tok.pad_token_id, dtype=torch.long)
        labels = torch.full((len(ps), width), -100, dtype=torch.long)
        for i, (p, r) in enumerate(zip(ps, rs, strict=True)):
            ids[i, : len(p) + len(r)] = torch.tensor(p + r)
            labels[i, len(p) : len(p) + len(r)] = torch.tensor(r)
        groups.append((ids, labels))
    return groups


def _train(out: Path, *, steps: int, seed: int, task: Task) -> dict[str, Any]:
    try:
        import torch
        from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM
    except ImportError as e:
        raise MissingExtraError("transformers", "hf") from e
    tok = _tokenizer()
    eos, pad = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    config = Qwen2Config(
        vocab_size=len(tok), bos_token_id=pad, eos_token_id=eos, pad_token_id=pad, **ARCH
    )
    config._attn_implementation = "eager"  # faster than SDPA at this size, same maths
    # matrices this small gain little from threads, and lose a lot when the cores are shared
    # (pytest -n 2 on two cores): one thread per two cores, at most four
    start = time.perf_counter()
    with torch_threads(max(1, min(4, (os.cpu_count() or 1) // 2))):
        torch.manual_seed(seed)
        model: Any = Qwen2ForCausalLM(config)  # type: ignore[no-untyped-call]
        model.train()
        opt = torch.optim.AdamW(
            model.parameters(),
            lr=TRAIN["lr"],
            betas=TRAIN["betas"],
            weight_decay=TRAIN["weight_decay"],
        )
        warmup = min(int(TRAIN["warmup"]), steps)

        def lr_at(step: int) -> float:  # linear warmup, then cosine decay to 10%
            if step < warmup:
                return (step + 1) / warmup
            t = (step - warmup) / max(1, steps - warmup)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        rng = random.Random(f"curate-toy-train-{seed}")
        losses = []
        for _ in range(steps):
            groups = _batch(tok, rng, TRAIN["batch"], task)
            counts = [int((labels != -100).sum()) for _, labels in groups]
            loss = 0.0
            for (ids, labels), count in zip(groups, counts, strict=True):
                # the mean over all the batch's reply tokens, one group at a time
                part = model(input_ids=ids, labels=labels).loss * (count / sum(counts))
                part.backward()
                loss += float(part.detach())
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss)
    seconds = time.perf_counter() - start
    model.eval()
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=pad, eos_token_id=eos, pad_token_id=pad, do_sample=True, temperature=0.6
    )
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    tail = losses[-20:]
    return {"train_seconds": round(seconds, 2), "final_loss": round(sum(tail) / len(tail), 4)}
