"""A small pool of killable worker processes speaking JSON lines over pipes.

Why not multiprocessing: a task that hangs in C code must be killed and its
worker replaced, calls come from threads, worker processes and async code
alike, and no pickling or re-import of the caller's ``__main__`` may happen.
Each worker is ``python -m MODULE``; a task is one JSON line in, one out.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

GRACE_SECONDS = 0.5  # past the task's own limit before the process is killed


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

    def send(self, task: dict[str, Any]) -> None:
        self.stdin.write(json.dumps(task).encode() + b"\n")
        self.stdin.flush()

    def read_line(self) -> dict[str, Any] | None:
        """One result if a whole line is available; raises EOFError if the worker died."""
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
            if b"\n" not in self.buffer and not select.select([self.fd], [], [], 0)[0]:
                return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        result: dict[str, Any] = json.loads(line)
        return result

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class ProcessPool:
    """Runs JSON tasks on up to ``size`` worker processes of ``module``.

    Thread-safe: concurrent callers each check out idle workers. Workers start
    on first use and are replaced when killed.
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
        slots = [self._idle.get()]
        while len(slots) < n:
            try:
                slots.append(self._idle.get_nowait())
            except queue.Empty:
                break
        return slots

    def _start(self) -> _Worker:
        worker = _Worker(self.module)
        with self._lock:
            self._live.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._live.discard(worker)

    def run(
        self,
        tasks: Sequence[dict[str, Any]],
        timeout: float,
        on_result: Callable[[int, dict[str, Any]], None],
    ) -> None:
        """Run every task; ``on_result(index, result)`` is called as each finishes.

        A task that overruns ``timeout`` (plus a grace) gets ``{"status": "timeout"}``
        and its worker is killed; one whose worker dies gets ``{"status": "error"}``.
        """
        pending = deque(range(len(tasks)))
        slots = self._checkout(len(tasks))
        idle: list[_Worker] = []
        busy: dict[_Worker, tuple[int, float]] = {}
        try:
            for slot in slots:
                if slot is not None:
                    idle.append(slot)
                elif pending:
                    idle.append(self._start())
            while pending or busy:
                while idle and pending:
                    worker, i = idle.pop(), pending.popleft()
                    worker.send({**tasks[i], "i": i, "timeout": timeout})
                    busy[worker] = (i, time.monotonic() + timeout + GRACE_SECONDS)
                wait = max(0.0, min(d for _, d in busy.values()) - time.monotonic())
                ready, _, _ = select.select([w.fd for w in busy], [], [], wait)
                by_fd = {w.fd: w for w in busy}
                for fd in ready:
                    worker = by_fd[fd]
                    try:
                        result = worker.read_line()
                    except EOFError:
                        i, _ = busy.pop(worker)
                        self._retire(worker)
                        idle.append(self._start())
                        on_result(i, {"ok": False, "status": "error", "detail": "checker crashed"})
                        continue
                    if result is not None:
                        busy.pop(worker)
                        idle.append(worker)
                        on_result(int(result.pop("i")), result)
                now = time.monotonic()
                for worker, (i, deadline) in list(busy.items()):
                    if now >= deadline:
                        busy.pop(worker)
                        self._retire(worker)
                        if pending:
                            idle.append(self._start())
                        on_result(i, {"ok": False, "status": "timeout"})
        except BaseException:
            for worker in busy:  # their replies would arrive out of step: start afresh
                self._retire(worker)
            busy.clear()
            raise
        finally:
            returned = idle + list(busy)
            for worker in returned:
                self._idle.put(worker)
            for _ in range(len(slots) - len(returned)):
                self._idle.put(None)

    def close(self) -> None:
        with self._lock:
            live, self._live = list(self._live), set()
        for worker in live:
            with contextlib.suppress(OSError):
                worker.stdin.close()
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
