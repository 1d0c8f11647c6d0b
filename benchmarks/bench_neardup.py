"""Near-duplicate recall and precision on real transcriptions of the same problems.

The same competition problem appears in several of the shared pools (../shared/data), each
transcribed its own way: MathArena's AIME text against AoPS's (Qwen2.5-Math, QwQ, rllm),
DAPO-17k's and DeepScaleR's copies of AIME, AMC and MATH problems (other LaTeX, an
instruction suffix, small wording changes). This script builds labelled pairs from them:

* **positives**: the same problem in two sources whose `curate.text.text_hash` differs (exact
  copies are `ExactDedup`'s, not counted). Matched by key where the pools have one (AIME
  year/contest/number, AMC contest/number from the AoPS url, MATH ``unique_id``,
  OlympiadBench id; QwQ's AIME by the answer, unique within its year); the unkeyed pools
  (DAPO-17k, DeepScaleR) are matched to a keyed problem only with high confidence: the same
  gold answer, word-set Jaccard of the statements at least 0.6 and a margin of 0.15 over the
  next-best problem (samples read by hand: the same problem, often with its figure, answer
  options or an answer-format sentence added or dropped, or reworded by DAPO).
* **hard negatives**: (a) each positive's second text with one number of its statement
  changed, paired with the first text (a problem with its numbers changed is another
  problem); (b) distinct problems (different keys) that look alike (word-set Jaccard at least
  0.5, top 3 neighbours), kept where their statement numbers differ ("other numbers") or,
  with the same numbers, their gold answers differ ("same numbers": another question on the
  same data, such as "radius" against "center"); pairs with the same numbers and answers may
  be true duplicates inside a pool and are left out.

The statement (`statement`) used for labelling drops Asymptote/TikZ figures, picture file
names, answer options, list numbers, links and wiki signatures with regular expressions of
its own: the labels do not depend on the code measured.

Every text of every pair goes into one pool; ``MinHashDedup`` (and ``SemanticDedup``, unless
``--no-semantic``) run over it through `curate.run.apply_stage`, and a pair counts as found
when both texts end in one cluster (in one connected component of both stages' clusters for
"MinHash + semantic"). Printed: recall, precision (over the other-number negatives, and over
all negatives), the share found per pair kind, the missed positives and false merges
(``--show N``). ``--dump``/``--pairs`` write and read the pairs, to measure two versions of
the code on the same pairs (``PYTHONPATH=<other src>``).

Run from the repository root::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_neardup.py [--show 20] [--no-semantic]
        [--dump pairs.jsonl | --pairs pairs.jsonl]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared/data")
ROMAN = {"1": "I", "2": "II", "I": "I", "II": "II"}
SUFFIXES = (
    "Let's think step by step and output the final answer within \\boxed{}.",
    "Please reason step by step, and put your final answer within \\boxed{}.",
)


@dataclass(frozen=True)
class Rec:
    source: str
    key: str | None  # the problem's identity across pools, when the pool says it
    problem: str
    answer: str | None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".json":
        data: list[dict[str, Any]] = json.loads(path.read_text())
        return data
    return [json.loads(line) for line in path.open() if line.strip()]


def _strip_suffix(text: str) -> str:
    for s in SUFFIXES:
        text = text.replace(s, "")
    return text.strip()


def _url_key(url: str) -> str | None:
    m = re.search(r"(\d{4})_AIME_(I+)_Problems/Problem_(\d+)", url)
    if m:
        return f"aime-{m[1]}-{m[2]}-{int(m[3])}"
    m = re.search(r"(\d{4})_AMC_(\d+[AB])_Problems/Problem_(\d+)", url)
    if m:
        return f"amc-{m[1]}-{m[2]}-{int(m[3])}"
    return None


def load(data: Path) -> list[Rec]:
    """Every record of the pools used, with its key where the pool gives one."""
    out: list[Rec] = []
    for year in ("2024", "2025"):
        for r in _jsonl(data / f"matharena/aime_{year}.jsonl"):
            part = ROMAN[r["competition"].rsplit("_", 1)[1]]
            key = f"aime-{year}-{part}-{int(r['id'])}"
            out.append(Rec("matharena", key, r["problem"], str(r["answer"])))
    for r in _jsonl(data / "qwen25_math_eval/aime24/test.jsonl"):
        out.append(Rec("qwen25", _url_key(r["url"]), r["problem"], str(r["answer"])))
    rllm_aime = _jsonl(data / "rllm/test/aime.json") + _jsonl(data / "rllm/train/aime.json")
    for r in rllm_aime:
        key = f"aime-{r['year']}-{ROMAN[str(r['aime_number'])]}-{int(r['problem_number'])}"
        out.append(Rec("rllm", key, r["problem"], str(r["answer"])))
    # QwQ's AIME files have no key (and aime24 is not in contest order): a problem takes the
    # key of the MathArena problem of that year with the same answer, where only one has it
    for year, name in (("2024", "aime24"), ("2025", "aime25")):
        by_answer = collections.defaultdict(list)
        for r in out:
            if r.source == "matharena" and (r.key or "").startswith(f"aime-{year}-"):
                by_answer[_norm_answer(r.answer)].append(r.key)
        for r in _jsonl(data / f"qwq_eval/{name}.jsonl"):
            keys = by_answer.get(_norm_answer(str(r["answer"])), [])
            key = keys[0] if len(keys) == 1 else None
            out.append(Rec("qwq", key, _strip_suffix(r["prompt"]), str(r["answer"])))
    for r in _jsonl(data / "qwen25_math_eval/amc23/test.jsonl"):
        out.append(Rec("qwen25", _url_key(r["url"]), r["problem"], _num(r["answer"])))
    for r in _jsonl(data / "rllm/test/amc.json"):
        out.append(Rec("rllm", _url_key(r["url"]), r["problem"], _num(r["answer"])))
    for split in ("train", "test"):
        for r in _jsonl(data / f"hendrycks_math/{split}.jsonl"):
            out.append(Rec("hendrycks", r["unique_id"], r["problem"], _boxed(r["solution"])))
    for r in _jsonl(data / "rllm/test/math.json"):
        out.append(Rec("rllm", r["unique_id"], r["problem"], r["answer"]))
    for r in _jsonl(data / "qwen25_math_eval/olympiadbench/test.jsonl"):
        out.append(Rec("qwen25", f"olympiad-{r['id']}", r["question"], _first(r["final_answer"])))
    for r in _jsonl(data / "rllm/test/olympiad_bench.json"):
        out.append(Rec("rllm", f"olympiad-{r['id']}", r["problem"], _first(r["answer"])))
    for r in _jsonl(data / "svs_dapo/dapo_math_17k.jsonl"):
        out.append(Rec("dapo", None, r["problem"], str(r["answer"])))
    ds = pl.read_parquet(data / "deepscaler_partial/deepscaler_train.parquet")
    for prompt, answer in zip(ds["prompt"].to_list(), ds["ground_truth"].to_list(), strict=True):
        out.append(Rec("deepscaler", None, _strip_suffix(prompt[0]["content"]), answer))
    return out


def _num(value: Any) -> str:
    f = float(value)
    return str(int(f)) if f == int(f) else str(f)


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def _boxed(solution: str) -> str | None:
    i = solution.rfind("\\boxed")
    if i < 0:
        return None
    j = solution.find("{", i)
    depth, k = 0, j
    while 0 <= k < len(solution):
        depth += {"{": 1, "}": -1}.get(solution[k], 0)
        if depth == 0:
            return solution[j + 1 : k]
        k += 1
    return None


def _norm_answer(a: str | None) -> str | None:
    if a is None:
        return None
    a = re.sub(r"\\(?:text|mathrm|textbf)\{([^}]*)\}|\\[,!;]|\$|\s|\\left|\\right", r"\1", a)
    a = a.replace("\\dfrac", "\\frac").replace("^\\circ", "").replace("^{\\circ}", "")
    a = a.rstrip(".").lstrip("0") or "0"
    try:
        f = float(a)
        return str(int(f)) if f == int(f) else str(f)
    except ValueError:
        return a


# ---- similarity matching ----------------------------------------------------------------------


_WORD = re.compile(r"\\[a-z]+|[a-z]+|[0-9]+")


def _token_sets(texts: list[str]) -> Any:
    """A binary (texts x vocabulary) sparse matrix of the word sets of the texts' statements
    (lowercase words, digit runs, LaTeX commands: simple on purpose, and independent of the
    code measured), and the set sizes."""
    from scipy.sparse import csr_matrix

    vocab: dict[str, int] = {}
    indptr, indices = [0], []
    for t in texts:
        ids = {vocab.setdefault(tok, len(vocab)) for tok in _WORD.findall(statement(t).lower())}
        indices.extend(sorted(ids))
        indptr.append(len(indices))
    m = csr_matrix(
        (np.ones(len(indices), np.float32), np.array(indices), np.array(indptr)),
        shape=(len(texts), max(len(vocab), 1)),
    )
    return m, np.diff(m.indptr)


def _jaccard_top(a: Any, sa: np.ndarray, b: Any, sb: np.ndarray, top: int = 2) -> Any:
    """For each row of ``a``: the ``top`` most similar rows of ``b`` and their Jaccard."""
    idx = np.zeros((a.shape[0], top), np.int64)
    val = np.zeros((a.shape[0], top), np.float32)
    for lo in range(0, a.shape[0], 1000):
        inter = (a[lo : lo + 1000] @ b.T).toarray()
        jac = inter / (sa[lo : lo + 1000, None] + sb[None, :] - inter + 1e-9)
        best = np.argsort(-jac, axis=1)[:, :top]
        idx[lo : lo + 1000] = best
        val[lo : lo + 1000] = np.take_along_axis(jac, best, axis=1)
    return idx, val


def match_unkeyed(recs: list[Rec], min_jac: float = 0.6, margin: float = 0.15) -> list[Rec]:
    """The unkeyed records given the key of the keyed problem they match with confidence."""
    keyed = [r for r in recs if r.key is not None]
    # one representative text per key (the first source's) to match against
    reps: dict[str, Rec] = {}
    for r in keyed:
        reps.setdefault(r.key or "", r)
    rep_list = list(reps.values())
    others = [r for r in recs if r.key is None]
    both, sizes = _token_sets([r.problem for r in rep_list] + [r.problem for r in others])
    mb, sb = both[: len(rep_list)], sizes[: len(rep_list)]
    ma, sa = both[len(rep_list) :], sizes[len(rep_list) :]
    idx, val = _jaccard_top(ma, sa, mb, sb)
    out = []
    for r, (i, _j), (v1, v2) in zip(others, idx, val, strict=True):
        ref = rep_list[int(i)]
        same_answer = _norm_answer(r.answer) == _norm_answer(ref.answer)
        if v1 >= min_jac and v1 - v2 >= margin and same_answer:
            out.append(Rec(r.source, ref.key, r.problem, r.answer))
    return out


# ---- labelled pairs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    label: bool  # True: the same problem
    kind: str  # where the pair comes from (a row of the per-kind table)


# Parts of a text that are not its statement (for labelling only: the pairs must not depend on
# the code they measure): Asymptote figures, image file names, answer choices.
_FIGURE = re.compile(
    r"(?is)\[asy\].*?(?:\[/asy\]|$)|<asy>.*?(?:</asy>|$)"
    r"|\\begin\{(?:asy|tikzpicture)\}.*?(?:\\end\{(?:asy|tikzpicture)\}|$)"
)
# links, wiki signatures ("~name", "Diagram by X (talk) 18:52, 15 February 2021") and LaTeX
# spacing by a length ("\kern 0.1em")
_WIKI = re.compile(
    r"(?m)https?://\S+|^.*\(talk\).*$|(?:^|[ \t])~ ?[A-Za-z_][\w.]*"
    r"|\\(?:m?kern|[hv]space\*?|[hv]skip) *\{? *-?[0-9.]+ *(?:em|ex|pt|mu|cm|mm|in|bp) *\}?"
)
_IMAGE = re.compile(r"(?im)^[\w \t-]*\.(?:png|jpe?g|gif|svg)[ \t]*$|\S+\.(?:png|jpe?g|gif|svg)\b")
_CHOICES = re.compile(r"(?s)\(A\)(?=.*\(B\)).*$")
_LIST = re.compile(r"(?m)^[ \t]*\$?\(?[0-9]{1,2}[.)]\$?[ \t]")  # "1. ", "(2) " opening a line


def statement(text: str) -> str:
    """``text`` without figures, links and signatures, image names, answer choices and list
    numbers."""
    text = _IMAGE.sub(" ", _WIKI.sub(" ", _FIGURE.sub(" ", text)))
    return _LIST.sub(" ", _CHOICES.sub(" ", text))


def _digits(text: str) -> list[str]:
    return sorted(re.findall(r"[0-9]+", statement(text)))


def _change_number(text: str, rng: random.Random) -> str | None:
    """``text`` with one number of its statement (a digit run outside what `statement`
    drops) made one larger; None if it has none."""
    parts = (_FIGURE, _WIKI, _IMAGE, _CHOICES, _LIST)
    hidden = [m.span() for r in parts for m in r.finditer(text)]
    runs = [
        m
        for m in re.finditer(r"[0-9]+", text)
        if not any(lo <= m.start() < hi for lo, hi in hidden)
    ]
    if not runs:
        return None
    m = rng.choice(runs)
    return text[: m.start()] + str(int(m.group()) + 1) + text[m.end() :]


def build_pairs(recs: list[Rec], seed: int = 0) -> list[Pair]:
    from curate.text import text_hash

    rng = random.Random(seed)
    by_key: dict[str, list[Rec]] = collections.defaultdict(list)
    for r in recs:
        if r.key is not None:
            by_key[r.key].append(r)
    pairs: list[Pair] = []
    seen: set[tuple[str, str]] = set()

    def add(a: str, b: str, label: bool, kind: str) -> None:
        k = (a, b) if a <= b else (b, a)
        if a != b and k not in seen:
            seen.add(k)
            pairs.append(Pair(a, b, label, kind))

    positives = []
    for key, group in sorted(by_key.items()):
        distinct: dict[str, Rec] = {}
        for r in group:
            distinct.setdefault(text_hash(r.problem), r)
        texts = list(distinct.values())
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                a, b = texts[i], texts[j]
                family = key.split("-")[0] if "-" in key else "math"
                kind = f"{family}: {'/'.join(sorted((a.source, b.source)))}"
                positives.append((a.problem, b.problem, kind))
    for a, b, kind in positives:
        add(a, b, True, kind)
    # (a) one number changed in the second text of each positive
    for a, b, kind in positives:
        changed = _change_number(b, rng)
        if changed is not None:
            add(a, changed, False, "changed number (" + kind.split(":")[0] + ")")
    # (b) distinct problems that look alike: different keys, word-set Jaccard >= 0.5
    reps = {r.key: r for r in recs if r.key is not None and r.source in ("hendrycks", "rllm")}
    rep_list = list(reps.values())
    m, size = _token_sets([r.problem for r in rep_list])
    idx, val = _jaccard_top(m, size, m, size, top=4)
    skipped = 0
    for i, (row, vals) in enumerate(zip(idx, val, strict=True)):
        for j, v in zip(row.tolist(), vals.tolist(), strict=True):
            if j == i or v < 0.5:
                continue
            a, b = rep_list[i], rep_list[j]
            other_numbers = _digits(a.problem) != _digits(b.problem)
            aa, ab = _norm_answer(a.answer), _norm_answer(b.answer)
            other_answer = aa is not None and ab is not None and aa != ab
            if other_answer or other_numbers:
                kind = "look-alike, " + ("other numbers" if other_numbers else "same numbers")
                add(a.problem, b.problem, False, kind)
            else:
                skipped += 1
    print(f"look-alikes left out (same numbers and answer): {skipped // 2}", file=sys.stderr)
    return pairs


# ---- running the stages -----------------------------------------------------------------------


def _frame(texts: list[str]) -> pl.DataFrame:
    from curate.schema import PROBLEM_DTYPES
    from curate.text import text_hash

    rows = [
        {"id": f"t{i:06d}", "text_hash": text_hash(t), "problem": t, "answer": None}
        | {"solution": None, "source": "bench", "subject": None, "level": None, "meta": "{}"}
        for i, t in enumerate(texts)
    ]
    return pl.DataFrame(rows, schema=PROBLEM_DTYPES)


def clusters(stage: Any, frame: pl.DataFrame, prefix: str, cache: Path | None) -> np.ndarray:
    """Each row's cluster label (the position of its keeper) after ``stage``."""
    from curate.run import apply_stage
    from curate.stage import StageContext

    ctx = None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        ctx = StageContext(run_dir=cache, cache_dir=cache, stage_name=stage.name, progress=False)
    kept, rejects = apply_stage(stage, frame, ctx)
    position = {row_id: i for i, row_id in enumerate(frame["id"].to_list())}
    label = np.arange(frame.height)
    col = f"{prefix}_cluster"
    for row_id, keeper in pl.concat([kept.select("id", col), rejects.select("id", col)]).rows():
        if keeper is not None:
            label[position[row_id]] = position[keeper]
    return label


SAME_NUMBERS = "look-alike, same numbers"


def score(pairs: list[Pair], pos: dict[str, int], label: np.ndarray) -> dict[str, Any]:
    """Pairs found, recall, and precision: over all negatives, and over those whose numbers
    differ (changed numbers, look-alikes with other numbers: what the numbers rule is for),
    with the merged same-number look-alikes (another question on the same data) counted apart."""
    found = np.array([label[pos[p.a]] == label[pos[p.b]] for p in pairs])
    truth = np.array([p.label for p in pairs])
    same = np.array([p.kind == SAME_NUMBERS for p in pairs])
    tp = int((found & truth).sum())
    fp_numbers = int((found & ~truth & ~same).sum())
    fp_same = int((found & same).sum())
    return {
        "found": found,
        "recall": tp / max(int(truth.sum()), 1),
        "precision": tp / max(tp + fp_numbers + fp_same, 1),
        "precision_numbers": tp / max(tp + fp_numbers, 1),
        "tp": tp,
        "fp_numbers": fp_numbers,
        "fp_same": fp_same,
        "fn": int((~found & truth).sum()),
    }


def _union(*labels: np.ndarray) -> np.ndarray:
    from curate.dedup.clusters import components

    n = len(labels[0])
    left = np.concatenate([np.arange(n) for _ in labels])
    right = np.concatenate(labels)
    return components(n, left, right)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--show", type=int, default=0, help="print this many missed positives")
    parser.add_argument("--no-semantic", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/curate_bench_neardup"))
    parser.add_argument("--dump", type=Path, help="write the labelled pairs here (JSONL)")
    parser.add_argument("--threshold", type=float, default=None, help="MinHash threshold")
    parser.add_argument("--pairs", type=Path, help="read the labelled pairs from here (JSONL)")
    args = parser.parse_args()
    from curate.dedup.minhash import MinHashDedup

    t0 = time.perf_counter()
    if args.pairs:
        pairs = [Pair(**json.loads(line)) for line in args.pairs.open()]
    else:
        recs = load(args.data)
        matched = match_unkeyed(recs)
        recs = [r for r in recs if r.key is not None] + matched
        print(f"records {len(recs)} (matched unkeyed: {len(matched)})", file=sys.stderr)
        pairs = build_pairs(recs)
    if args.dump:
        with args.dump.open("w") as f:
            for p in pairs:
                f.write(json.dumps(p.__dict__) + "\n")
    texts = sorted({t for p in pairs for t in (p.a, p.b)})
    pos = {t: i for i, t in enumerate(texts)}
    frame = _frame(texts)
    n_pos = sum(p.label for p in pairs)
    print(
        f"pairs: {n_pos} positive, {len(pairs) - n_pos} negative; {len(texts)} texts; "
        f"built in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    options = {} if args.threshold is None else {"threshold": args.threshold}
    stage = MinHashDedup(**options)
    t1 = time.perf_counter()
    results = {f"MinHashDedup (v{stage.version})": clusters(stage, frame, "minhash", None)}
    print(f"minhash {time.perf_counter() - t1:.1f} s", file=sys.stderr)
    if not args.no_semantic:
        from curate.dedup.semantic import SemanticDedup

        sem = clusters(SemanticDedup(), frame, "semantic", args.cache)
        results["SemanticDedup (0.9)"] = sem
        first = next(iter(results.values()))
        results["MinHash + semantic"] = _union(first, sem)
    kinds = sorted({p.kind for p in pairs})
    print(
        "\n| method | recall | precision: other numbers | precision: all negatives | TP | FN "
        "| FP: other numbers | FP: same-number look-alikes |\n|---|" + "---:|" * 7
    )
    scores = {}
    for name, label in results.items():
        s = scores[name] = score(pairs, pos, label)
        print(
            f"| {name} | {s['recall']:.4f} | {s['precision_numbers']:.4f} | {s['precision']:.4f} "
            f"| {s['tp']} | {s['fn']} | {s['fp_numbers']} | {s['fp_same']} |"
        )
    print("\n| pair kind | pairs | " + " | ".join(results) + " |")
    print("|---|---:|" + "---:|" * len(results))
    for kind in kinds:
        members = [i for i, p in enumerate(pairs) if p.kind == kind]
        cells = [f"{scores[n]['found'][members].mean():.3f}" for n in results]
        print(f"| {kind} | {len(members)} | " + " | ".join(cells) + " |")
    print("(positive kinds: share found = recall; negative kinds: share found = false merges)")
    first_name = next(iter(results))
    found = scores[first_name]["found"]
    missed = [p for p, f in zip(pairs, found, strict=True) if p.label and not f]
    wrong = [p for p, f in zip(pairs, found, strict=True) if not p.label and f]
    for title, group in (("MISSED", missed[: args.show]), ("FALSE MERGE", wrong[: args.show])):
        for p in group:
            print(f"\n--- {title} [{p.kind}]\nA: {p.a[:400]!r}\nB: {p.b[:400]!r}")


if __name__ == "__main__":
    main()
