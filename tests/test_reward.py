"""Rewards: TRL's calling convention (standard and conversational completions, columns,
sync and async), None or 0 for what could not be checked, the R1 format, verl's
``compute_score`` on rows of a real verl export and loaded by file path the way verl
loads it, and the time limit from a worker thread and from an event loop."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import curate
from curate._procpool import shared_pool
from curate.errors import ConfigError, InputError
from curate.reward import (
    AsyncAccuracyReward,
    accuracy_reward,
    accuracy_reward_async,
    compute_score,
    compute_score_batch,
    make_accuracy_reward,
    make_think_format_reward,
    think_format_reward,
    verl_overrides,
    verl_reward_path,
)

LIMIT = 1.0  # seconds per check where a check must time out
MARGIN = 10.0  # a killed checker is replaced (imports) on a loaded machine
SLOW = r"The answer is $\boxed{(10^{10})!}$."  # math-verify computes it: past any limit
RIGHT, WRONG = r"<think>3 + 4 = 7</think>So the answer is $\boxed{7}$.", r"$\boxed{8}$"


def _chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


# ---------------------------------------------------------------------- TRL rewards


def test_standard_and_conversational_completions() -> None:
    texts = [RIGHT, WRONG, "I don't know.", "<think>3 + 4 is"]
    golds = ["7"] * 4
    assert accuracy_reward(texts, answer=golds) == [1.0, 0.0, 0.0, 0.0]
    assert accuracy_reward([_chat(t) for t in texts], answer=golds) == [1.0, 0.0, 0.0, 0.0]
    # a tool-using turn: the answer is in the last assistant message
    turns = [{"role": "assistant", "content": "let me compute"}, {"role": "tool", "content": "7"}]
    assert accuracy_reward([[*turns, *_chat("It is 7.")]], answer=["7"]) == [1.0]
    blocks = [{"role": "assistant", "content": [{"type": "text", "text": r"\boxed{7}"}]}]
    assert accuracy_reward([blocks], answer=["7"]) == [1.0]


@pytest.mark.parametrize(
    "column",
    [
        {"answer": ["7", "7"]},
        {"ground_truth": ["7", "7"]},
        {"solution": [r"So $3+4=\boxed{7}$.", "3 + 4 = 7\n#### 7"]},
        {"reward_model": [{"style": "rule", "ground_truth": "7"}] * 2},
    ],
    ids=["answer", "ground_truth", "solution", "reward_model"],
)
def test_gold_columns(column: dict[str, Any]) -> None:
    assert accuracy_reward([RIGHT, WRONG], problem=["3+4?"] * 2, **column) == [1.0, 0.0]


def test_gold_column_named_and_missing() -> None:
    reward = make_accuracy_reward(gold_column="final")
    assert reward([RIGHT], final=["7"], answer=["8"]) == [1.0]
    with pytest.raises(InputError, match=r"'final'.*got the columns \['answer'\]"):
        reward([RIGHT], answer=["7"])
    with pytest.raises(InputError, match="'answer' or 'ground_truth'"):
        accuracy_reward([RIGHT], problem=["3+4?"])
    with pytest.raises(InputError, match="2 values for 1 completions"):
        accuracy_reward([RIGHT], answer=["7", "7"])


def test_percent_is_a_value() -> None:
    assert accuracy_reward([r"\boxed{1\%}"] * 2, answer=["0.01", "1"]) == [1.0, 0.0]


def test_unverifiable_is_zero_or_none() -> None:
    texts = [RIGHT, WRONG, RIGHT, "no idea", SLOW]
    golds = ["7", "7", None, "7", "1"]
    assert make_accuracy_reward(timeout=LIMIT)(texts, answer=golds) == [1.0, 0.0, 0.0, 0.0, 0.0]
    skip = make_accuracy_reward(timeout=LIMIT, unverifiable=None)
    assert skip(texts, answer=golds) == [1.0, 0.0, None, 0.0, None]
    with pytest.raises(ConfigError, match="timeout"):
        make_accuracy_reward(timeout=0)


def test_called_the_way_grpo_trainer_calls_it() -> None:
    """As TRL 1.16's ``_calculate_rewards``: every column but prompt/completion as keyword
    lists, plus ``trainer_state``, ``log_extra`` and ``log_metric``."""
    logged: dict[str, Any] = {}
    reward = make_accuracy_reward(name="acc")
    out = reward(
        prompts=[[{"role": "user", "content": "3+4?"}]] * 2,
        completions=[_chat(RIGHT), _chat(WRONG)],
        completion_ids=[[1, 2], [3]],
        trainer_state=object(),
        log_extra=logged.__setitem__,
        log_metric=logged.__setitem__,
        answer=["7", "7"],
        id=["a", "a"],
        source=["math", "math"],
    )
    assert out == [1.0, 0.0]
    assert logged == {
        "acc/read": ["7", "8"],
        "acc/verdict": ["equivalent", "different"],
        "acc/unverifiable": 0.0,
    }


def test_trl_reads_the_names_and_awaits_the_async_ones() -> None:
    utils = pytest.importorskip("trl.trainer.utils")
    sync, asyn = make_accuracy_reward(name="acc"), make_accuracy_reward(asynchronous=True)
    assert [utils.get_callable_name(f) for f in (accuracy_reward, sync, asyn)] == [
        "accuracy_reward",
        "acc",
        "accuracy_reward",
    ]
    assert not utils.is_async_callable(sync) and not utils.is_async_callable(accuracy_reward)
    assert utils.is_async_callable(asyn) and utils.is_async_callable(accuracy_reward_async)
    # TRL runs async rewards with asyncio.gather on an event loop in a daemon thread
    thread, loop, ready = utils.start_event_loop_in_daemon(name="rewards")
    ready.wait()
    try:

        async def both() -> list[Any]:
            kwargs = {"completions": [RIGHT, WRONG], "answer": ["7", "7"]}
            return list(await asyncio.gather(asyn(**kwargs), accuracy_reward_async(**kwargs)))

        got = asyncio.run_coroutine_threadsafe(both(), loop).result(timeout=60)
    finally:
        utils.shutdown_event_loop_in_daemon(thread, loop)
    assert got == [[1.0, 0.0], [1.0, 0.0]]


def test_configured_rewards_pickle() -> None:
    """TRL's async GRPO worker pickles reward functions into a spawned process."""
    for reward in (make_accuracy_reward(name="acc", unverifiable=None), AsyncAccuracyReward()):
        copy = pickle.loads(pickle.dumps(reward))
        assert type(copy) is type(reward) and copy.__name__ == reward.__name__
        assert copy.unverifiable == reward.unverifiable
    fmt = pickle.loads(pickle.dumps(make_think_format_reward(opened_in="prompt", name="fmt")))
    assert (fmt.opened_in, fmt.__name__) == ("prompt", "fmt")


@pytest.mark.parametrize(
    ("text", "completion", "prompt", "either"),
    [
        ("<think>\nLet me see.\n</think>\n\nThe answer is 4.", 1.0, 0.0, 1.0),
        ("  <think>a</think>4", 1.0, 0.0, 1.0),
        ("<think></think>4", 1.0, 0.0, 1.0),  # empty thinking: the tags are there
        ("Let me see.\n</think>\n\nThe answer is 4.", 0.0, 1.0, 1.0),  # opened by the prompt
        ("<think>Let me see.</think>", 0.0, 0.0, 0.0),  # no answer after it
        ("<think>Let me see.</think>  \n", 0.0, 0.0, 0.0),
        ("<think>Let me see, and see", 0.0, 0.0, 0.0),  # cut off while thinking
        ("<think>a</think>b<think>c</think>d", 0.0, 0.0, 0.0),  # two blocks
        ("<think>a<think>b</think>c", 0.0, 0.0, 0.0),
        ("a</think>b</think>c", 0.0, 0.0, 0.0),
        ("The answer is 4.", 0.0, 0.0, 0.0),
        ("", 0.0, 0.0, 0.0),
    ],
)
def test_think_format(text: str, completion: float, prompt: float, either: float) -> None:
    assert think_format_reward([text]) == [completion]
    assert think_format_reward([_chat(text)]) == [completion]
    assert make_think_format_reward(opened_in="prompt")([text]) == [prompt]
    assert make_think_format_reward(opened_in="either")([text]) == [either]


def test_think_format_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="opened_in='nowhere'"):
        make_think_format_reward(opened_in="nowhere")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- verl


def _verl_rows(tmp_path: Path) -> list[dict[str, Any]]:
    rows = [
        {"problem": "What is 3 + 4?", "answer": "7"},
        {"problem": "Half of one?", "answer": r"\frac{1}{2}"},
        {"problem": "Roots of x^2 = 4?", "answer": r"-2, 2"},
    ]
    sources = []
    for name in ("math", "dapo"):
        pool = tmp_path / f"{name}.jsonl"
        pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
        sources.append(curate.read(pool, source=name))
    run = curate.Recipe("rl", sources, []).run(tmp_path / "run")
    curate.export_run(run, tmp_path / "verl", format="verl")
    files = sorted((tmp_path / "verl" / "data").glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_compute_score_on_verl_rows(tmp_path: Path) -> None:
    rows = _verl_rows(tmp_path)
    assert {r["data_source"] for r in rows} == {"math", "dapo"} and len(rows) == 6
    good = [
        rf"<think>hm</think>The answer is $\boxed{{{r['reward_model']['ground_truth']}}}$."
        for r in rows
    ]
    for row, text in zip(rows, good, strict=True):
        args = (row["data_source"], text, row["reward_model"]["ground_truth"])
        assert compute_score(*args, extra_info=row["extra_info"]) == 1.0
        assert compute_score(row["data_source"], r"\boxed{3}", args[2], row["extra_info"]) == 0.0
    # the batch form, as verl's BatchRewardManager calls it
    scores = compute_score_batch(
        data_sources=[r["data_source"] for r in rows] * 2,
        solution_strs=good + ["<think>still thinking"] * len(rows),
        ground_truths=[r["reward_model"]["ground_truth"] for r in rows] * 2,
        extra_infos=[r["extra_info"] for r in rows] * 2,
    )
    assert scores == [1.0] * len(rows) + [0.0] * len(rows)


def test_compute_score_options() -> None:
    assert compute_score("any/name", r"\boxed{5}", ["4", "5"]) == 1.0  # accepted answers
    assert compute_score("x", r"\boxed{5}", {"ground_truth": "5"}) == 1.0
    assert compute_score("x", r"\boxed{5}", None) == 0.0
    assert compute_score("x", r"\boxed{5}", None, unverifiable=-1.0) == -1.0
    assert compute_score("x", SLOW, "1", timeout=LIMIT, unverifiable=0.5) == 0.5
    got = compute_score("x", r"so $\boxed{5}$", "5", None, details=True, reward_router_address=None)
    assert got == {"score": 1.0, "acc": True, "pred": "5"}


def test_verl_loads_it_by_file_path() -> None:
    """verl's ``load_extern_object``: ``spec_from_file_location`` under a made-up name."""
    path = verl_reward_path()
    assert Path(path).is_file() and os.path.isabs(path)
    name = f"custom_module_{hashlib.md5(path.encode()).hexdigest()}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = module.compute_score
    assert fn("math", r"$\boxed{\frac{1}{2}}$", "0.5", {"index": 0}) == 1.0
    assert module.compute_score_batch(["gsm8k"], ["#### 3"], ["3"], [{}]) == [1.0]


def test_verl_overrides() -> None:
    path, name = verl_overrides().split(" ")
    assert (path, name) == (
        f"custom_reward_function.path={verl_reward_path()}",
        "custom_reward_function.name=compute_score",
    )
    assert verl_overrides(batch=True, where="at_run") == (
        'custom_reward_function.path="$(python -m curate.reward.verl)" '
        "custom_reward_function.name=compute_score_batch reward_model.reward_manager=batch"
    )


# ------------------------------------------------------ the time limit, off the main thread


def _busy_workers() -> list[int]:
    """Live checkers that are running (a hung one would be), after every call returned."""
    busy = []
    for pid in shared_pool("curate.verification.worker").workers():
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "R":
                busy.append(pid)
    return busy


def _settle() -> list[int]:
    deadline = time.monotonic() + 2
    while (busy := _busy_workers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return busy


def test_time_limit_holds_in_a_worker_thread() -> None:
    reward = make_accuracy_reward(timeout=LIMIT, unverifiable=None)
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(reward([SLOW, RIGHT], answer=["1", "7"])))
    start = time.perf_counter()
    thread.start()
    thread.join(LIMIT + MARGIN)
    assert not thread.is_alive() and time.perf_counter() - start < LIMIT + MARGIN
    assert out == [[None, 1.0]]
    assert _settle() == []
    assert accuracy_reward(["x+1"], answer=["1+x"]) == [1.0]  # the pool still works


def test_time_limit_holds_in_an_event_loop() -> None:
    reward = make_accuracy_reward(timeout=LIMIT, asynchronous=True, unverifiable=None)

    async def main() -> tuple[list[Any], int]:
        ticks = 0

        async def clock() -> None:  # the loop is never blocked by the grading
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(clock())
        calls = [reward([SLOW, RIGHT], answer=["1", "7"]), reward([WRONG], answer=["7"])]
        calls.append(accuracy_reward_async([r"\frac{2}{4}"], answer=["0.5"]))
        got = list(await asyncio.gather(*calls))
        ticker.cancel()
        return got, ticks

    start = time.perf_counter()
    got, ticks = asyncio.run(main())
    assert time.perf_counter() - start < LIMIT + MARGIN
    assert got == [[None, 1.0], [0.0], [1.0]]
    assert ticks >= 5
    assert _settle() == []
