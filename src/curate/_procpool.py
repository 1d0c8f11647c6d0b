"""A small pool of killable worker processes speaking JSON lines over pipes.

Why not multiprocessing: a task that hangs in C code must be killed and its
worker replaced, calls come from threads, worker processes and async code
alike, and no pickling or re-import of the caller's ``__main__`` may happen.
Each worker is ``python -m MODULE``; a task is one JSON line in, one out.

Protocol: a worker writes ``{"ready": true}`` once it has imported what it
needs, then answers each task line with one result line carrying the task's
``"i"``, in order. A task's clock starts when the worker can start on it (it is
ready and has answered the task before it), not when it was sent, so a cold
start or a queue never eats into a task's time limit.

Tasks are pipelined: a worker is sent its next tasks before it has answered
the current one, so it never waits on the parent. Tasks that share a group
(the same gold answer, say) go to the same worker, whose caches then hit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

GRACE_SECONDS = 0.5  # past the task's own limit before the process is killed
STARTUP_SECONDS = 120.0  # a worker not ready by then is killed (a broken install)
UNIT = 4  # most tasks of one group sent to a worker at once
_AHEAD = 1  # a worker is sent more work while it has at most this many tasks queued
_POLL = 0.05  # seconds between looks for workers freed by other callers


class _Worker:
    def __init__(self, module: str) -> None:
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.ready = False
        self.born = time.monotonic()

    def send(self, tasks: Sequence[dict[str, Any]]) -> None:
        self.stdin.write(b"".join(json.dumps(t).encode() + b"\n" for t in tasks))
        self.stdin.flush()

    def read_lines(self) -> list[dict[str, Any]]:
        """Every whole line available now (call when the pipe is readable).

        Raises EOFError if the worker died.
        """
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            raise EOFError
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines]

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                assert f is not None
                f.close()


class _Slot:
    """A worker checked out by one `ProcessPool.run` call, with its queue of tasks."""

    def __init__(self, worker: _Worker | None) -> None:
        self.worker = worker  # None: not started (or retired), start one when there is work
        self.queue: deque[int] = deque()  # sent, not yet answered; the head is running
        self.started = 0.0  # when the head task could start

    def deadline(self, timeout: float) -> float:
        assert self.worker is not None
        if not self.worker.ready:
            return self.worker.born + STARTUP_SECONDS
        return self.started + timeout + GRACE_SECONDS


class ProcessPool:
    """Runs JSON tasks on up to ``size`` worker processes of ``module``.

    Thread-safe: concurrent callers each check out idle workers; a call hands back
    a worker as soon as it has nothing left to give it, and a call with work left
    picks up the workers others free while it runs. Workers start on first use and
    are replaced when killed.
    """

    def __init__(self, module: str, size: int) -> None:
        self.module = module
        self.size = max(1, size)
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(self.size):
            self._idle.put(None)  # a slot; the process starts when first needed
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()

    def _checkout(self, n: int) -> list[_Worker | None]:
        """At least one worker (waiting for it), and up to ``n`` if they are free."""
        first = self._idle.get()
        return [first, *self._take_free(n - 1)]

    def _take_free(self, n: int) -> list[_Worker | None]:
        """Up to ``n`` idle workers (or unstarted slots), without waiting."""
        taken: list[_Worker | None] = []
        while len(taken) < n:
            try:
                taken.append(self._idle.get_nowait())
            except queue.Empty:
                break
        return taken

    def _start(self) -> _Worker:
        worker = _Worker(self.module)
        with self._lock:
            self._live.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._live.discard(worker)

    def workers(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        with self._lock:
            return [w.proc.pid for w in self._live]

    def run(
        self,
        tasks: Sequence[dict[str, Any]],
        timeout: float,
        on_result: Callable[[int, dict[str, Any]], None],
        groups: Sequence[Hashable] | None = None,
    ) -> None:
        """Run every task; ``on_result(index, result)`` is called as each finishes.

        A task that overruns ``timeout`` (plus a grace) gets ``{"status": "timeout"}``
        and its worker is killed; one whose worker dies gets ``{"status": "error"}``.
        Consecutive tasks with equal ``groups`` keys are sent to the same worker.
        """
        units: deque[list[int]] = deque()
        for i in range(len(tasks)):
            last = units[-1] if units else None
            if (
                groups is not None
                and last is not None
                and len(last) < UNIT
                and groups[last[-1]] == groups[i]
            ):
                last.append(i)
            else:
                units.append([i])
        if not units:
            return
        slots = [_Slot(w) for w in self._checkout(len(units))]
        crashed: set[int] = set()
        try:
            while units or any(s.queue for s in slots):
                if units and len(slots) < self.size:  # workers other callers freed since
                    slots.extend(_Slot(w) for w in self._take_free(len(units)))
                now = time.monotonic()
                for s in sorted(slots, key=lambda s: len(s.queue)):
                    if units and len(s.queue) <= _AHEAD:
                        if s.worker is None:
                            s.worker = self._start()
                        unit = units.popleft()
                        idle = not s.queue
                        if idle:
                            s.started = now
                        s.queue.extend(unit)
                        try:
                            s.worker.send([{**tasks[i], "i": i, "timeout": timeout} for i in unit])
                        except OSError:  # it died: between calls (killed?) or at start
                            if idle and s.worker.ready:
                                units.extendleft([i] for i in reversed(s.queue))
                                s.queue.clear()
                                self._retire(s.worker)
                                s.worker = None
                            else:
                                self._fail(s, units, "error", "checker crashed", on_result, crashed)
                busy = [s for s in slots if s.queue]
                if not units and len(busy) < len(slots):  # hand idle workers to other calls
                    for s in slots:
                        if not s.queue:
                            self._idle.put(s.worker)
                    slots = busy
                if not busy:  # a worker found dead: start another
                    continue
                wait = max(0.0, min(s.deadline(timeout) for s in busy) - now)
                if units and len(slots) < self.size:
                    wait = min(wait, _POLL)  # look for freed workers now and then
                ready, _, _ = select.select([s.worker.fd for s in busy if s.worker], [], [], wait)
                by_fd = {s.worker.fd: s for s in busy if s.worker}
                for fd in ready:
                    s = by_fd[fd]
                    assert s.worker is not None
                    try:
                        lines = s.worker.read_lines()
                    except EOFError:
                        self._fail(s, units, "error", "checker crashed", on_result, crashed)
                        continue
                    now = time.monotonic()
                    for result in lines:
                        if result.get("ready"):
                            s.worker.ready = True
                            s.started = now
                            continue
                        i = s.queue.popleft()
                        if int(result.pop("i")) != i:
                            raise RuntimeError(f"checker answered {result} out of order")
                        s.started = now
                        on_result(i, result)
                now = time.monotonic()
                for s in slots:
                    if s.queue and now >= s.deadline(timeout):
                        assert s.worker is not None
                        if s.worker.ready:
                            self._fail(s, units, "timeout", "", on_result)
                        else:
                            self._fail(s, units, "error", "checker did not start", on_result)
        except BaseException:
            for s in slots:  # replies would arrive out of step: start afresh
                if s.queue and s.worker is not None:
                    self._retire(s.worker)
                    s.worker = None
            raise
        finally:
            for s in slots:
                self._idle.put(s.worker)

    def _fail(
        self,
        slot: _Slot,
        units: deque[list[int]],
        status: str,
        detail: str,
        on_result: Callable[[int, dict[str, Any]], None],
        crashed: set[int] | None = None,
    ) -> None:
        """Kill the slot's worker; its running task gets ``status``, the rest go back.

        With ``crashed`` (the tasks whose worker died once already), a task whose
        worker died is first tried again on a fresh worker: the worker may have
        been killed from outside. A task that kills two workers gets ``status``.
        """
        assert slot.worker is not None
        self._retire(slot.worker)
        slot.worker = None
        head = slot.queue.popleft()
        units.extendleft([i] for i in reversed(slot.queue))
        slot.queue.clear()
        if crashed is not None and head not in crashed:
            crashed.add(head)
            units.appendleft([head])
            return
        result: dict[str, Any] = {"ok": False, "status": status}
        if detail:
            result["detail"] = detail
        on_result(head, result)

    def close(self) -> None:
        with self._lock:
            live, self._live = list(self._live), set()
        for worker in live:
            worker.kill()


_pools: dict[tuple[str, int], ProcessPool] = {}
_pools_lock = threading.Lock()


def shared_pool(module: str, size: int | None = None) -> ProcessPool:
    """The process-wide pool of ``size`` workers (default: one per core) for ``module``.

    Created on first use and closed at exit; workers stay warm between calls.
    """
    key = (module, size or (os.cpu_count() or 1))
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ProcessPool(*key)
        return _pools[key]


@atexit.register
def _close_all() -> None:
    for pool in list(_pools.values()):
        pool.close()


def _forget_after_fork() -> None:
    """In a forked child the parent's workers are not ours: the child starts its own.

    The parent's pools are kept referenced (never used, never closed) so that
    nothing in the child writes to, kills or closes the parent's workers.
    """
    global _pools_lock
    _orphans.extend(_pools.values())
    _pools.clear()
    _pools_lock = threading.Lock()


_orphans: list[ProcessPool] = []
os.register_at_fork(after_in_child=_forget_after_fork)
