r"""Worker process for the slow path of `curate.verify`: math-verify under a time limit.

Run as ``python -m curate.verification.worker``. Writes ``{"ready": true}`` once
imported, then reads one JSON task per line on stdin and writes one JSON result
per line on stdout. Each task runs under a SIGALRM timer (this is the worker's
main thread, where signals work); the parent also kills the whole process if a
task overruns its limit, which covers C code that never returns to the
interpreter (huge integer powers).

Only LaTeX extraction is used: math-verify's plain-expression extraction goes
through sympy's ``parse_expr``, which evaluates strings, and data from a dataset
is never evaluated.

The options of `curate.VerifyOptions` reach math-verify as its own settings
(``float_rounding``, ``strict``, ``allow_set_relation_comp``) and through its numeric
comparison, which is wrapped here: a percent (``X\%``, which latex2sympy reads as
``X * 1/100``) is compared as X, as X/100 or as either, and numbers within the relative or
absolute tolerance are equal. Where math-verify finds two answers different, a careful
grader's other readings are tried (`_reshaped`: a tuple against a one-column matrix, "x < 2
or x > 3" against a union of intervals), and an answer it cannot parse at all is read by
the last side of its chain (`_last_side`); otherwise the verdicts are math-verify's own
(and, by default, for the percent rule of `curate.verify`: ``1.1\%`` is 1.1).

A check says why it could not decide: a side with no expression in it is
``gold_unparseable``/``pred_unparseable``, an exception in the comparison is ``error``
(unless a comparison without raising finds them equal), an overrun is ``timeout``.

Four speed-ups that leave every verdict as math-verify's own:

- parses are cached per worker (a gold answer is parsed once, not once per
  response), and sympy objects are immutable, so sharing them is safe;
- ``simplify(a - b)`` is skipped where ``a - b`` is provably not zero: it is
  an elementary expression whose value, at a point that satisfies every
  assumption on its symbols (a positive non-integer rational), is clearly
  non-zero; simplify preserves values, so math-verify's symbolic check would
  have answered False, only slower;
- a number's digits become a sympy number directly, not through sympy's
  string parser (``Number("12")`` calls ``parse_expr``: 1-2 ms each); the
  result is the same object (checked for type, value, precision and
  ``srepr`` on thousands of digit strings);
- the LaTeX grammar is parsed with ANTLR's two-stage strategy: SLL prediction
  first, and full LL only if SLL reports a syntax error. ANTLR guarantees that
  an SLL parse without a syntax error is the parse LL returns (see
  ``antlr4.atn.PredictionMode.SLL``), and every SLL failure is redone in LL,
  so the trees are the same; SLL is 3-5x faster because full-context
  predictions are never cached by ANTLR.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
from functools import lru_cache
from typing import Any

PARSE_CACHE = 4096  # parsed answers kept per worker
_DECIMAL = re.compile(r"[0-9]+\.[0-9]*|\.[0-9]+")


class _Overrun(BaseException):
    """Raised by the timer; a BaseException so library code can't swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Overrun


def _describe(e: BaseException) -> str:
    try:
        return f"{type(e).__name__}: {e}"[:200]
    except Exception:  # str() of a huge integer, say
        return type(e).__name__


def _two_stage_parsing() -> None:
    """Make latex2sympy parse with SLL prediction, falling back to LL on any error."""
    from antlr4.atn.PredictionMode import PredictionMode  # type: ignore[import-untyped]
    from latex2sympy2_extended import latex2sympy2

    cls = latex2sympy2._Latex2Sympy
    create = cls.create_parser

    def create_parser(self: Any, latex_str: str) -> Any:
        parser = create(self, latex_str)
        parser._interp.predictionMode = PredictionMode.SLL
        sll = parser.math

        def math() -> Any:
            try:
                return sll()
            except Exception:  # a syntax error, or SLL too weak: redo it exactly as LL would
                return create(self, latex_str).math()

        parser.math = math
        return parser

    cls.create_parser = create_parser


def _skip_hopeless_simplify() -> None:
    """Answer math-verify's symbolic check without ``simplify`` when ``a - b`` is not 0."""
    import sympy
    from math_verify import grader

    # what mpmath evaluates to any precision: numbers, constants, symbols, + * ^ and
    # elementary functions (no integrals, sums, limits, piecewise, floor...)
    elementary = (
        sympy.Number, sympy.NumberSymbol, type(sympy.I), sympy.Symbol,
        sympy.Add, sympy.Mul, sympy.Pow,
        sympy.sin, sympy.cos, sympy.tan, sympy.cot, sympy.sec, sympy.csc,
        sympy.asin, sympy.acos, sympy.atan, sympy.acot,
        sympy.sinh, sympy.cosh, sympy.tanh, sympy.exp, sympy.log, sympy.Abs,
    )  # fmt: skip
    infinite = (sympy.nan, sympy.zoo, sympy.oo, -sympy.oo)
    symbolic_eq = grader.sympy_symbolic_eq

    def surely_different(a: Any, b: Any) -> bool:
        if not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
            return False
        diff = a - b
        if any(not isinstance(node, elementary) for node in sympy.preorder_traversal(diff)):
            return False
        point = {}
        for k, symbol in enumerate(sorted(diff.free_symbols, key=str)):
            value = sympy.Rational(7919 + 1009 * k, 9973 + 131 * k)  # 0.79 .. 1.46, not whole
            if not isinstance(symbol, sympy.Symbol) or any(
                getattr(value, f"is_{key}") != holds for key, holds in symbol.assumptions0.items()
            ):
                return False
            point[symbol] = value
        if len(point) > 8:
            return False
        at, at_a, at_b = (e.subs(point).evalf(30) for e in (diff, a, b))
        if any(not e.is_number or e.has(*infinite) for e in (at, at_a, at_b)):
            return False
        size, scale = abs(at), 1 + abs(at_a) + abs(at_b)
        return bool(size.is_Number and scale.is_Number and size > 1e-10 * scale)

    def sympy_symbolic_eq(a: Any, b: Any) -> bool:
        try:
            if surely_different(a, b):
                return False
        except Exception:  # undecided here: leave it to math-verify
            pass
        return bool(symbolic_eq(a, b))

    grader.sympy_symbolic_eq = sympy_symbolic_eq


def _direct_numbers() -> None:
    """``_Latex2Sympy.parse_number`` without sympy's string parser for plain digits."""
    import sympy
    from latex2sympy2_extended import latex2sympy2

    cls = latex2sympy2._Latex2Sympy
    original = cls.parse_number

    def parse_number(self: Any, text: str) -> Any:
        digits = text.replace(",", "")
        if len(digits) <= 100 and digits.isascii():
            if digits.isdigit():  # the original strips leading zeros, then Number(digits)
                return sympy.Integer(int(digits.lstrip("0") or "0"))
            if _DECIMAL.fullmatch(digits):
                return sympy.Float(digits)
        return original(self, text)

    cls.parse_number = parse_number


_OPTIONS: dict[str, Any] = {}  # the options of the task being checked


def _options_in_numeric_comparison() -> None:
    """Wrap math-verify's numeric comparison with the percent rule and the tolerances of
    the task's options (`_OPTIONS`)."""
    import sympy
    from math_verify import grader

    numeric_eq = grader.sympy_numeric_eq

    def variants(x: Any) -> list[Any]:
        value = grader.get_pct_val(x)
        if value is None:
            return [x]
        mode = _OPTIONS.get("percent", "either")
        as_value = sympy.Mul(value, sympy.Rational(1, 100))
        return {"number": [value], "value": [as_value]}.get(mode, [value, as_value])

    def close(a: Any, b: Any) -> bool:
        rel, tol = _OPTIONS.get("rel_tol", 0.0), _OPTIONS.get("abs_tol", 0.0)
        if not (rel or tol) or not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
            return False
        if not (a.is_number and b.is_number):
            return False
        x, y = sympy.N(a, 30), sympy.N(b, 30)
        if not (x.is_real and y.is_real and x.is_finite and y.is_finite):
            return False
        return bool(abs(x - y) <= max(rel * max(abs(x), abs(y)), tol))

    def sympy_numeric_eq(a: Any, b: Any, float_rounding: int, numeric_precision: int) -> bool:
        for x in variants(a):
            for y in variants(b):
                if numeric_eq(x, y, float_rounding, numeric_precision) or close(x, y):
                    return True
        return False

    grader.sympy_numeric_eq = sympy_numeric_eq


_SIDE_BREAK = re.compile(r"=|\\approx|\\equiv")


def _last_side(answer: str) -> str | None:
    r"""What follows the last top-level ``=`` (or ``\approx``) of one chain, or None: the
    value of ``-\mathbf{I} + \mathbf{A} = \begin{pmatrix}...`` when the whole chain does not
    parse (as math-verify does for chains it can parse; not for lists such as ``x=2, y=4``).
    """
    depth, cut = 0, None
    for i, ch in enumerate(answer):
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif depth == 0 and ch in ",;":
            return None
        elif (
            depth == 0 and (m := _SIDE_BREAK.match(answer, i)) and answer[i - 1 : i] not in "<>!\\"
        ):
            cut = m.end()
    rest = answer[cut:].strip() if cut is not None else ""
    return rest or None


def _reshaped(gold: list[Any], pred: list[Any], opts: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Other readings of the pair under which a careful grader compares them, when
    math-verify compares them as written and finds them different:

    - a vector written as a tuple and as a one-column (or one-row) matrix;
    - with relations as sets: relations joined by "or" (``x < 2`` or ``x > 3``, read as a set
      of relations) and the union of intervals they describe.
    """
    import sympy
    from sympy.core.relational import Relational

    def first(answers: list[Any]) -> Any:
        return next((a for a in answers if isinstance(a, (sympy.Basic, sympy.MatrixBase))), None)

    def vector(x: Any) -> Any:
        if isinstance(x, sympy.Tuple) and len(x) > 1:
            return sympy.Matrix(list(x))
        if isinstance(x, sympy.MatrixBase) and 1 in x.shape and len(x) > 1:
            return sympy.Matrix(list(x))
        return None

    def union(x: Any) -> Any:
        if not isinstance(x, (sympy.FiniteSet, sympy.Tuple)) or len(x.args) < 2:
            return None
        if not all(isinstance(r, (Relational, sympy.And)) for r in x.args):  # And: 0<x<9
            return None
        if len(set().union(*(r.free_symbols for r in x.args))) != 1:
            return None
        return sympy.Union(*(r.as_set() for r in x.args))

    g, p = first(gold), first(pred)
    out = []
    either_tuple = isinstance(g, sympy.Tuple) or isinstance(p, sympy.Tuple)
    if either_tuple and (vg := vector(g)) is not None and (vp := vector(p)) is not None:
        out.append((vg, vp))
    if opts.get("set_relation"):
        if isinstance(g, sympy.Set) and (up := union(p)) is not None:
            out.append((g, up))
        if isinstance(p, sympy.Set) and (ug := union(g)) is not None:
            out.append((ug, p))
    return out


def main() -> None:
    sys.setrecursionlimit(4000)
    logging.disable(logging.CRITICAL)  # math-verify warns once when its own timer is off
    from math_verify import LatexExtractionConfig, parse, verify
    from sympy import Basic, MatrixBase
    from sympy.core.cache import clear_cache

    _two_stage_parsing()
    _skip_hopeless_simplify()
    _direct_numbers()
    _options_in_numeric_comparison()
    config = [LatexExtractionConfig()]
    signal.signal(signal.SIGALRM, _on_alarm)

    def has_expression(answers: list[Any]) -> bool:
        return any(isinstance(a, (Basic, MatrixBase)) for a in answers)

    @lru_cache(maxsize=PARSE_CACHE)
    def parsed(answer: str) -> list[Any]:
        result: list[Any] = parse(f"${answer}$", config, parsing_timeout=None)
        if not has_expression(result) and (last := _last_side(answer)) is not None:
            again: list[Any] = parse(f"${last}$", config, parsing_timeout=None)
            if has_expression(again):  # "-\mathbf{I} + \mathbf{A} = \begin{pmatrix}..."
                return again
        return result

    def check(task: dict[str, Any]) -> dict[str, Any]:
        gold, pred = parsed(task["gold"]), parsed(task["pred"])
        for side, answers in (("gold", gold), ("pred", pred)):
            if not answers:
                return {"status": f"{side}_unparseable", "reason": "unparseable",
                        "detail": f"math-verify finds no answer in the {side}"}  # fmt: skip
        opts = task.get("opts") or {}
        _OPTIONS.clear()
        _OPTIONS.update(opts)
        decimals = opts.get("decimals", 6)
        settings = {
            "float_rounding": 15 if decimals is None else decimals,
            "strict": opts.get("strict", True),
            "allow_set_relation_comp": opts.get("set_relation", False),
            "timeout_seconds": None,
        }
        try:
            ok = verify(gold, pred, raise_on_error=True, **settings)
        except Exception as e:  # was it only one of several readings that failed?
            if verify(gold, pred, **settings):
                return {"status": "equivalent", "reason": "symbolic"}
            return {"status": "error", "reason": "error", "detail": _describe(e)}
        if ok or any(verify([g], [p], **settings) for g, p in _reshaped(gold, pred, opts)):
            return {"status": "equivalent", "reason": "symbolic"}
        for side, answers in (("gold", gold), ("pred", pred)):
            if not has_expression(answers):
                seen = str(answers[-1])[:150]
                return {"status": f"{side}_unparseable", "reason": "unparseable",
                        "detail": f"math-verify cannot parse the {side}: {seen}"}  # fmt: skip
        return {"status": "different", "reason": "symbolic"}

    def run(task: dict[str, Any]) -> dict[str, Any]:
        if task["op"] == "verify":
            return check(task)
        if task["op"] == "parse":
            answer = parsed(task["answer"])
            exprs = [p for p in answer if isinstance(p, (Basic, MatrixBase))]
            return {
                "status": "expression" if exprs else "unparseable",
                "detail": str(answer[-1])[:200] if answer else "",
            }
        if task["op"] == "forget":  # benchmarks: time cold caches on warm workers
            parsed.cache_clear()
            clear_cache()
            return {"status": "forgotten", "detail": str(os.getpid())}
        return {"status": "error", "reason": "error", "detail": f"unknown op {task['op']!r}"}

    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        task = json.loads(line)
        try:
            signal.setitimer(signal.ITIMER_REAL, float(task["timeout"]))
            try:
                result = run(task)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Overrun:
            result = {"status": "timeout", "reason": "timeout"}
        except RecursionError:
            result = {
                "status": "error",
                "reason": "error",
                "detail": "expression nested too deeply",
            }
        except Exception as e:  # a verdict, not a crash: the checker could not decide
            result = {"status": "error", "reason": "error", "detail": _describe(e)}
        result["i"] = task["i"]
        out.write(json.dumps(result) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
