"""Worker process for the slow path of `curate.verify`: math-verify under a time limit.

Run as ``python -m curate._verify_worker``. Reads one JSON task per line on
stdin, writes one JSON result per line on stdout. Each task runs under a
SIGALRM timer (this is the worker's main thread, where signals work); the
parent also kills the whole process if a task overruns its limit, which covers
C code that never returns to the interpreter (huge integer powers).

Only LaTeX extraction is used: math-verify's plain-expression extraction goes
through sympy's ``parse_expr``, which evaluates strings, and data from a dataset
is never evaluated.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any


class _Overrun(BaseException):
    """Raised by the timer; a BaseException so library code can't swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Overrun


def _wrap(answer: str) -> str:
    if "$" in answer or "\\boxed" in answer or "\\(" in answer or "\\[" in answer:
        return answer
    return f"${answer}$"


def main() -> None:
    sys.setrecursionlimit(4000)
    logging.disable(logging.CRITICAL)  # math-verify warns once when its own timer is off
    from math_verify import LatexExtractionConfig, parse, verify
    from sympy import Basic, MatrixBase

    config = [LatexExtractionConfig()]
    signal.signal(signal.SIGALRM, _on_alarm)

    def run(task: dict[str, Any]) -> dict[str, Any]:
        if task["op"] == "verify":
            gold = parse(_wrap(task["gold"]), config, parsing_timeout=None)
            pred = parse(_wrap(task["pred"]), config, parsing_timeout=None)
            if not gold or not pred:
                return {
                    "ok": False,
                    "status": "unparseable",
                    "detail": "gold" if not gold else "pred",
                }
            ok = verify(gold, pred, timeout_seconds=None)
            return {"ok": bool(ok), "status": "symbolic" if ok else "different"}
        if task["op"] == "parse":
            parsed = parse(_wrap(task["answer"]), config, parsing_timeout=None)
            exprs = [p for p in parsed if isinstance(p, (Basic, MatrixBase))]
            return {
                "ok": bool(exprs),
                "status": "expression" if exprs else "unparseable",
                "detail": str(parsed[-1])[:200] if parsed else "",
            }
        return {"ok": False, "status": "error", "detail": f"unknown op {task['op']!r}"}

    out = sys.stdout
    for line in sys.stdin:
        task = json.loads(line)
        try:
            signal.setitimer(signal.ITIMER_REAL, float(task["timeout"]))
            try:
                result = run(task)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Overrun:
            result = {"ok": False, "status": "timeout"}
        except RecursionError:
            result = {"ok": False, "status": "error", "detail": "expression nested too deeply"}
        except Exception as e:  # a verdict, not a crash: the checker could not decide
            result = {"ok": False, "status": "error", "detail": f"{type(e).__name__}: {e}"[:200]}
        result["i"] = task["i"]
        out.write(json.dumps(result) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
