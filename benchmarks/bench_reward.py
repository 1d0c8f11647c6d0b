r"""Throughput and latency of `curate.reward` under the three ways a trainer calls it.

1,000 completions with their gold answers: the real model outputs of
``tests/data/grading_cases.jsonl`` and ``benchmarks/data/grading_heldout.jsonl`` (right and
wrong, boxed, R1-style, chat debris), then made-up ones: R1-style ``<think>`` completions
(right and wrong), completions cut off while thinking, no answer at all, ``\boxed{}``
edge cases (empty, unbalanced, nested, several, ``\fbox``), and adversarial LaTeX
(deeply nested fractions and roots, huge exponents and towers, 5,000 nested braces, 100 kB
of LaTeX, and factorials that math-verify computes until it is stopped, which must time
out). Each is graded through the reward functions (`make_accuracy_reward` and
`think_format_reward`):

  (a) one call with all 1,000 (one ``verify_many`` batch);
  (b) 4 threads at once, each calling the reward on batches of ``--batch`` completions
      (a GRPO step: prompts x generations);
  (c) an asyncio loop with every batch's call of the async reward in flight at once.

Before each mode the checkers' parse caches are cleared (warm processes, cold caches), so
no mode gains from the one before. It reports completions/s, the longest call, the
verdicts that timed out (from the ``log_extra`` columns TRL would log), and afterwards
whether any checker process is left hung (running with nothing to do) and how many child
processes this process has.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_reward.py [--timeout 5] [--batch 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from curate._procpool import shared_pool
from curate.reward import make_accuracy_reward, think_format_reward
from curate.verification import DEFAULT_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
REAL = [ROOT / "tests/data/grading_cases.jsonl", ROOT / "benchmarks/data/grading_heldout.jsonl"]
WORKER = "curate.verification.worker"
N = 1000


def made_up(r1: int = 60) -> list[tuple[str, str, str]]:
    """(kind, gold, completion) of the synthetic completions (``r1`` pairs of R1-style)."""
    out: list[tuple[str, str, str]] = []
    for i in range(r1):
        a, b = 17 + i, 5 * i + 3
        think = f"<think>\nWe need {a} + {b}. Adding, {a} + {b} = {a + b}.\n</think>\n\n"
        out.append(("r1_right", str(a + b), think + f"The answer is $\\boxed{{{a + b}}}$."))
        out.append(("r1_wrong", str(a + b + 1), think + f"So the sum is $\\boxed{{{a + b}}}$."))
    for i in range(50):
        out.append(("cut_off", str(i), f"<think>\nLet me compute {i} times 1 carefully. First"))
    for i in range(30):
        out.append(("no_answer", str(i), "I am not sure how to approach this problem."))
    boxes = [
        r"The answer is $\boxed{}$.",
        r"The answer is $\boxed{7",
        r"So $\boxed{\boxed{7}}$.",
        r"First $\boxed{3}$, then finally $\boxed{7}$.",
        r"The answer is \boxed 7.",
        r"The answer is $\fbox{7}$.",
        r"$\boxed{7}$.",
        r"$\boxed{\text{7}}$",
        r"\boxed{{7}}",
        r"\boxed{7}\boxed{}",
    ]
    for i in range(60):
        out.append(("boxed_edge", "7", boxes[i % len(boxes)] + " " * (i // len(boxes))))
    hostile = []
    for i in range(8):
        depth = 100 + 50 * i
        hostile.append(("1", r"\boxed{" + r"\frac{" * depth + "1" + "}{2}" * depth + "}"))
        hostile.append(
            ("2", r"\boxed{" + r"\sqrt{" * (50 + 10 * i) + "2" + "}" * (50 + 10 * i) + "}")
        )
        hostile.append(("2", rf"\boxed{{2^{{{99999999 - i}}}}}"))
        hostile.append(("1", rf"\boxed{{10^{{10^{{{10 + i}}}}}}}"))
    hostile.append(("1", r"\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}"))
    hostile.append(("x", r"\boxed{" + "x" * 100_000 + "}"))
    for i in range(4):  # math-verify computes these until it is stopped
        hostile.append(("1", rf"The answer is $\boxed{{({10 + i}^{{10}})!}}$."))
    out += [("adversarial", g, c) for g, c in hostile]
    return out


def completions() -> list[tuple[str, str, str]]:
    real = []
    for path in REAL:
        for line in path.read_text().splitlines():
            case = json.loads(line)
            real.append(
                ("real_right" if case["expected"] else "real_wrong", case["gold"], case["pred"])
            )
    synthetic = made_up()
    r1 = 60 + max(0, N - len(real) - len(synthetic) + 1) // 2  # fill up to N with R1-style
    items = [*real, *made_up(r1)][-N:]
    random.Random(0).shuffle(items)  # the hard ones spread over the batches, as in training
    return items


def forget(workers: int) -> None:
    """Clear the checkers' parse caches (and sympy's): warm processes, cold caches."""
    shared_pool(WORKER, workers).run([{"op": "forget"}] * workers, 10.0, lambda i, r: None)


def hung_and_children(workers: int) -> tuple[int, int]:
    """Checkers still running with nothing to do (after a 2 s grace), and child processes."""
    deadline = time.monotonic() + 2
    while True:
        running = 0
        for pid in shared_pool(WORKER, workers).workers():
            with open(f"/proc/{pid}/stat") as f:
                running += f.read().rsplit(")", 1)[1].split()[0] == "R"
        if not running or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    me, children = str(os.getpid()), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children += f.read().rsplit(")", 1)[1].split()[1] == me
            except OSError:
                pass
    return running, children


class Calls:
    """Latency of each call and the verdicts the reward logged (as TRL would)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.timed_out: list[str] = []
        self.rewards: list[float | None] = []
        self.lock = threading.Lock()

    def log_extra(self, column: str, values: list[Any]) -> None:
        if column.endswith("/verdict"):
            with self.lock:
                self.statuses.update(values)

    def done(self, seconds: float, rewards: list[float | None]) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.rewards += rewards


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def run_mode(name: str, body: Callable[[Calls], None], workers: int, n: int) -> dict[str, Any]:
    forget(workers)
    calls = Calls()
    start = time.perf_counter()
    body(calls)
    seconds = time.perf_counter() - start
    hung, children = hung_and_children(workers)
    return {
        "mode": name,
        "calls": len(calls.latencies),
        "seconds": seconds,
        "per_s": n / seconds,
        "max_call_s": max(calls.latencies),
        "timeouts": calls.statuses["timeout"],
        "errors": calls.statuses["error"],
        "reward_1": sum(r == 1.0 for r in calls.rewards),
        "hung": hung,
        "children": children,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    items = completions()
    kinds = Counter(k for k, _, _ in items)
    golds, texts = [g for _, g, _ in items], [c for _, _, c in items]
    chats = [[{"role": "assistant", "content": t}] for t in texts]
    sync = make_accuracy_reward(timeout=args.timeout, workers=args.workers)
    asyn = make_accuracy_reward(timeout=args.timeout, workers=args.workers, asynchronous=True)
    sync(["x+1", "0.5"], answer=["1+x", r"\frac12"])  # start the checkers

    def one(calls: Calls, texts: Sequence[Any], golds: Sequence[str]) -> None:
        start = time.perf_counter()
        rewards = sync(texts, answer=list(golds), log_extra=calls.log_extra)
        think_format_reward(texts)
        calls.done(time.perf_counter() - start, rewards)

    def all_at_once(calls: Calls) -> None:
        one(calls, chats, golds)

    def threads(calls: Calls) -> None:
        with ThreadPoolExecutor(args.threads) as ex:
            jobs = zip(batches(chats, args.batch), batches(golds, args.batch), strict=True)
            list(ex.map(lambda job: one(calls, *job), jobs))

    def event_loop(calls: Calls) -> None:
        async def call(texts: Sequence[Any], golds: Sequence[str]) -> None:
            start = time.perf_counter()
            rewards = await asyn(texts, answer=list(golds), log_extra=calls.log_extra)
            think_format_reward(texts)
            calls.done(time.perf_counter() - start, rewards)

        async def every() -> None:
            jobs = zip(batches(chats, args.batch), batches(golds, args.batch), strict=True)
            await asyncio.gather(*(call(t, g) for t, g in jobs))

        asyncio.run(every())

    plain = [
        (c, g) for (k, _, _), c, g in zip(items, chats, golds, strict=True) if k != "adversarial"
    ]

    def without_adversarial(calls: Calls) -> None:
        one(calls, [c for c, _ in plain], [g for _, g in plain])

    rows = [
        run_mode(
            f"(a) one call, the {len(plain)} not adversarial",
            without_adversarial,
            args.workers,
            len(plain),
        ),
        run_mode("(a) one call, all 1,000", all_at_once, args.workers, len(items)),
        run_mode(
            f"(b) {args.threads} threads, batches of {args.batch}",
            threads,
            args.workers,
            len(items),
        ),
        run_mode(
            f"(c) asyncio, batches of {args.batch} at once", event_loop, args.workers, len(items)
        ),
    ]
    print(f"{len(items)} completions: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(
        f"timeout {args.timeout:g} s per check, {args.workers} checker processes, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print(
        "| mode | calls | s | completions/s | max call s | timeouts | reward 1.0 | hung "
        "| children |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['calls']} | {r['seconds']:.2f} | {r['per_s']:,.0f} | "
            f"{r['max_call_s']:.2f} | {r['timeouts']} | {r['reward_1']} | {r['hung']} | "
            f"{r['children']} |"
        )
    same = len({r["reward_1"] for r in rows[1:]}) == 1
    print()
    print("same rewards in every mode:", same)
    if any(r["hung"] for r in rows) or any(r["children"] > args.workers for r in rows):
        raise SystemExit("a checker was left hung, or more children than checkers")


if __name__ == "__main__":
    main()
