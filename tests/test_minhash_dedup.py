"""MinHashDedup: quality on labelled real pairs, conservation, order independence, determinism,
edge cases, keep rules, answer conflicts, cross-dataset (reference) mode; and the tokens and
shingles it is built on, vectorized versus the plain-Python definition."""

from __future__ import annotations

import functools
import itertools
import random
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _factories import problems_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_stages import ROWS, assert_conserved

import curate
from curate.dedup.clusters import keeper_of
from curate.dedup.minhash import MinHashDedup
from curate.dedup.sketch import optimal_bands, signatures
from curate.hashing import gram_hash
from curate.run import apply_stage
from curate.shingles import math_tokens, number_keys, numbers, shingles, token_hash
from curate.stage import StageContext
from curate.verification import normalize_answer

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"

# ---- labelled pairs from the bundled real problems ----------------------------------------

SYNONYMS = {
    "find": "determine", "determine": "find", "compute": "calculate", "calculate": "compute",
    "what": "which", "largest": "greatest", "greatest": "largest", "smallest": "least",
    "least": "smallest", "sum": "total", "total": "sum", "each": "every", "every": "each",
    "if": "when", "value": "result", "number": "count", "has": "contains", "the": "this",
    "is": "equals", "are": "were", "of": "for",
}  # fmt: skip
INSTRUCTIONS = (
    " Put your answer in \\boxed{}.",
    " Please reason step by step, and put your final answer within \\boxed{}.",
    "\nLet's think step by step.",
    " Write your final answer as \\boxed{answer}.",
)


def reword(text: str, rng: random.Random) -> str:
    """Swap one or two words (outside math) for synonyms; else add a word in front."""
    words = [
        m
        for m in re.finditer(r"(?<![\\\w])[A-Za-z]+(?!\w)", text)
        if m.group().lower() in SYNONYMS and text[: m.start()].count("$") % 2 == 0
    ]
    if not words:
        return "Now, " + text
    for m in sorted(
        rng.sample(words, min(len(words), rng.choice([1, 2]))), key=lambda m: -m.start()
    ):
        new = SYNONYMS[m.group().lower()]
        new = new.capitalize() if m.group()[0].isupper() else new
        text = text[: m.start()] + new + text[m.end() :]
    return text


def lookalikes(text: str, rng: random.Random) -> str:
    """Unicode look-alikes: minus, apostrophe, times, <=, Cyrillic letters, no-break spaces."""
    text = text.replace("\\le ", "≤ ").replace("\\cdot", "×").replace("-", "−").replace("'", "’")
    cyrillic = {"a": "а", "e": "е", "o": "о"}
    text = re.sub(r"(?<![\\\w$])([aeo])(?=[a-z]{2})", lambda m: cyrillic[m.group()], text, count=3)
    return text.replace(" ", "\u00a0", 2)


PERTURB = {
    "frac": lambda t, r: (
        t.replace("\\frac", "\\dfrac") if "\\frac" in t else t.replace("$", "$\\displaystyle ", 1)
    ),
    "delimiters": lambda t, r: re.sub(r"\$([^$]+)\$", r"\\(\1\\)", t),
    "whitespace": lambda t, r: re.sub(" ", lambda m: r.choice([" ", "  ", "\n", " \t "]), t),
    "left_right": lambda t, r: re.sub(r"(?<!\\)\(([^()]*)(?<!\\)\)", r"\\left(\1\\right)", t),
    "lookalikes": lookalikes,
    "instruction": lambda t, r: t.rstrip() + r.choice(INSTRUCTIONS),
    "reword": reword,
}


def renumber(text: str, rng: random.Random) -> str:
    """Every number replaced by another."""
    return re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), text)


@functools.cache
def demo_pool() -> tuple[tuple[str, str | None], ...]:
    frames = [
        curate.read(DEMO / "math_train.jsonl").frame(),
        curate.read(DEMO / "gsm8k_train.jsonl", problem="question", solution="answer").frame(),
        curate.read(DEMO / "aime_1983_2023.json").frame(),
        curate.read(DEMO / "dapo_math_17k.parquet").frame(),
    ]
    pool = pl.concat([f.select("problem", "answer") for f in frames])
    return tuple(pool.unique("problem", keep="first", maintain_order=True).iter_rows())


Pair = tuple[str, str, str]  # (kind, a, b)


@functools.cache
def labelled_pairs() -> tuple[list[Pair], list[Pair]]:
    """Positives: a real problem and a reformatted / reworded / suffixed copy. Negatives: the
    problem with every number changed; problems that open with the same five tokens but have
    different gold answers (hard); random other problems."""
    rng = random.Random(0)
    problems = [p for p, _ in demo_pool()]
    kinds = list(PERTURB)
    positives = [
        (kinds[i % len(kinds)], t, PERTURB[kinds[i % len(kinds)]](t, rng))
        for i, t in enumerate(rng.sample(problems, 1400))
    ]
    with_numbers = [t for t in problems if re.search(r"\d", t)]
    negatives = [("numbers", t, renumber(t, rng)) for t in rng.sample(with_numbers, 600)]
    openings: dict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
    for problem, answer in demo_pool():
        if answer is not None:
            openings[tuple(math_tokens(problem)[:5])].append((problem, normalize_answer(answer)))
    for group in openings.values():
        for (a, x), (b, y) in itertools.pairwise(group):
            if x != y:
                negatives.append(("same_opening", a, b))
    negatives += [
        ("random", a, b)
        for a, b in zip(rng.sample(problems, 300), rng.sample(problems, 300), strict=True)
        if a != b
    ]
    return positives, negatives


def same_cluster(stage: MinHashDedup, pairs: list[Pair]) -> list[bool]:
    """For each pair: did the stage put both texts in one cluster (all pairs in one run)?"""
    texts = list(dict.fromkeys([a for _, a, _ in pairs] + [b for _, _, b in pairs]))
    kept, rejects = apply_stage(stage, problems_frame([(t, None) for t in texts]))
    rows = pl.concat(
        [
            kept.select("problem", "id", "minhash_cluster"),
            rejects.select("problem", "id", "minhash_cluster"),
        ]
    )
    cluster = {p: c or i for p, i, c in rows.iter_rows()}
    return [cluster[a] == cluster[b] for _, a, b in pairs]


def test_precision_and_recall_on_labelled_real_pairs_at_default_settings() -> None:
    positives, negatives = labelled_pairs()
    found = same_cluster(MinHashDedup(), positives)
    false = same_cluster(MinHashDedup(), negatives)
    tp, fp = sum(found), sum(false)
    recall, precision = tp / len(positives), tp / (tp + fp)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for (kind, _, _), hit in zip(positives + negatives, found + false, strict=True):
        by_kind[kind].append(hit)
    report = {k: f"{sum(v)}/{len(v)}" for k, v in by_kind.items()}
    assert recall >= 0.95 and precision >= 0.95, (recall, precision, report)
    assert not any(by_kind["numbers"]), "a problem with its numbers changed is another problem"
    assert len(negatives) > 1000


# ---- tokens and shingles: vectorized == definition ----------------------------------------


def reference_shingles(text: str | None, n: int, kind: str) -> list[int]:
    tokens = math_tokens(text or "")
    if kind == "word":
        items = [token_hash(t) for t in tokens]
    else:
        from curate.shingles import _BYTE_HASH

        items = [int(_BYTE_HASH[b]) for b in " ".join(tokens).encode()]
    grams = [items[i : i + n] for i in range(len(items) - n + 1)] or ([items] if items else [])
    return [gram_hash(g) for g in grams]


def assert_same_shingles(texts: list[str | None], n: int = 3, kind: str = "word") -> None:
    got = shingles(texts, n, kind)  # type: ignore[arg-type]
    for i, text in enumerate(texts):
        mine = got.hashes[got.offsets[i] : got.offsets[i + 1]].tolist()
        assert mine == reference_shingles(text, n, kind), repr(text)


def assert_same_numbers(texts: list[str | None]) -> None:
    """`number_keys` tells texts apart exactly as `numbers` (the definition) does."""
    keys = number_keys(texts).tolist()
    key_of: dict[tuple[str, ...], int] = {}
    numbers_of: dict[int, tuple[str, ...]] = {}
    for text, key in zip(texts, keys, strict=True):
        found = tuple(numbers(text or ""))
        assert key_of.setdefault(found, key) == key, repr(text)
        assert numbers_of.setdefault(key, found) == found, repr(text)
        assert (key == 0) == (not found), repr(text)
    assert shingles(texts).numbers.tolist() == keys


def test_vectorized_shingles_equal_the_definition_on_real_problems() -> None:
    texts = [*[p for p, _ in demo_pool()][::4], None, "", "   "]
    for n, kind in [(3, "word"), (1, "word"), (5, "char")]:
        assert_same_shingles(texts, n, kind)
    assert_same_numbers(texts + [renumber(t, random.Random(i)) for i, t in enumerate(texts[:200])])


FRAGMENTS = st.sampled_from(
    [
        "\\left", "\\right", "\\dfrac", "\\frac", "\\le", "\\leq", "\\LEFT", "\\(", "\\)", "\\,",
        "\\ ", "\\\\", "\\$", "$", "{", "}", "1", "23", " ", "\n", "x", "Find", ".", "?", "!",
        "your answer", "\\boxed{}", "step by step", "ß", "İ", "ǰ", "а", "А", "ς", "Σ", "≤",
        "×", "π", "°", "’", "−", "\u00a0", "\u2028", "\x1c", "１２", "（", "é", "e\u0301", "中",
        "ﬁ", "µ", "\\text{", "\\quad", "\\big", "2\\left3", "_", "^", "-", "-7",
        "\\alpha", "ΑΣ ", "ϲ", "ͺ", "Ꭰ", "\u3000", "𝑥", "😀", "\U000e0001", "\U00031350",
    ]
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(FRAGMENTS | st.text(max_size=3), max_size=12).map("".join), max_size=6))
def test_vectorized_shingles_equal_the_definition_on_tricky_text(texts: list[str]) -> None:
    assert_same_shingles(list(texts), 2, "word")
    assert_same_shingles(list(texts), 4, "char")
    assert_same_numbers(list(texts))


def test_polars_and_python_agree_on_every_character_the_bulk_unicode_path_takes() -> None:
    """The bulk path (`curate.shingles._unicode`) runs NFKC and lowercasing in Polars; it is
    exact only where Polars and Python's unicodedata agree, checked here for every character
    it accepts (a Polars upgrade with another Unicode version would fail here, not corrupt
    shingles)."""
    import unicodedata

    from curate.shingles import _KNOWN_PLANES, _unicode_rules

    rules = _unicode_rules()
    chars = pl.Series([chr(c) for r in _KNOWN_PLANES for c in r])
    known = chars.filter(~chars.str.contains(rules.unknown))
    assert 60_000 < len(known) < len(chars)
    python = pl.Series([unicodedata.normalize("NFKC", c) for c in known])
    assert (known.str.normalize("NFKC") == python).all()
    plain = python.filter(~python.str.contains(rules.special))
    folded = [c.casefold() for c in plain]
    assert plain.str.to_lowercase().to_list() == folded
    spaces = pl.Series([chr(c) for c in range(0x80, 0x110000) if chr(c).isspace()])
    assert spaces.str.contains(f"^{rules.spaces}$").all()


def test_numbers_key_tells_changed_numbers_apart() -> None:
    s = shingles(["Find $x$ if $2x=6$.", "find x if 2 x = 6", "Find x if 2x = 8.", "Find x.", None])
    assert s.numbers[0] == s.numbers[1] != s.numbers[2]
    assert s.numbers[3] == s.numbers[4] == 0
    keys = number_keys(
        ["If y = 3 and x = -2, find x.", "Find x when x=-2 and y=3.", "x = 2, y = 3"]
    )
    assert keys[0] == keys[1] != keys[2]  # the same numbers in another order; a sign differs


# ---- the stage contract ---------------------------------------------------------------------

STAGES = [
    MinHashDedup(),
    MinHashDedup(keep="last", ngram=2, threshold=0.5),
    MinHashDedup(shingle="char", ngram=4, verify="exact", numbers="ignore", sketch="classic"),
]


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: f"{s.shingle}{s.ngram}-{s.sketch}")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=ROWS)
def test_minhash_dedup_conserves_rows(
    stage: MinHashDedup, data: list[tuple[str, str | None]]
) -> None:
    rows = problems_frame(data)
    kept, rejects = apply_stage(stage, rows)
    assert_conserved(rows, kept, rejects)
    assert set(rejects["reason"]) <= {"duplicate"}
    # rejects name their keeper, which is kept
    assert set(map(keeper_of, rejects["detail"])) <= set(kept["id"])


def partition(stage: MinHashDedup, rows: pl.DataFrame) -> set[frozenset[str]]:
    kept, rejects = apply_stage(stage, rows)
    both = pl.concat(
        [kept.select("id", "minhash_cluster"), rejects.select("id", "minhash_cluster")]
    )
    groups: dict[str, set[str]] = defaultdict(set)
    for row_id, cluster in both.iter_rows():
        groups[cluster or row_id].add(row_id)
    return {frozenset(g) for g in groups.values()}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=ROWS, seed=st.integers(0, 2**16))
def test_clusters_do_not_depend_on_row_order(data: list[tuple[str, str | None]], seed: int) -> None:
    rows = problems_frame(data)
    shuffled = rows.sample(fraction=1.0, shuffle=True, seed=seed)
    for stage in (MinHashDedup(), MinHashDedup(ngram=1, threshold=0.3, verify="exact")):
        assert partition(stage, rows) == partition(stage, shuffled)


def test_order_independence_on_real_problems() -> None:
    positives, _ = labelled_pairs()
    texts = [t for _, a, b in positives[:300] for t in (a, b)]
    rows = problems_frame([(t, None) for t in texts])
    assert partition(MinHashDedup(), rows) == partition(
        MinHashDedup(), rows.sample(fraction=1.0, shuffle=True, seed=7)
    )


def test_recipe_runs_are_byte_identical(tmp_path: Path) -> None:
    sources = [curate.read(DEMO / "math_train.jsonl"), curate.read(DEMO / "dapo_math_17k.parquet")]
    recipe = curate.Recipe("m", sources, [MinHashDedup()])
    one, two = recipe.run(tmp_path / "one"), recipe.run(tmp_path / "two")
    for name in ("kept.parquet", "rejects.parquet"):
        a, b = (r.path / r.manifest["stages"][1]["dir"] / name for r in (one, two))
        assert a.read_bytes() == b.read_bytes()
    stats = one.stages[1].stats
    assert stats["duplicates"] == one.stages[1].rejected["duplicate"] > 0
    assert {"bands", "rows", "candidate_pairs", "verified_pairs", "clusters"} <= set(stats)


# ---- edge cases -------------------------------------------------------------------------------


def test_empty_input_and_one_row() -> None:
    empty = problems_frame([])
    kept, rejects = apply_stage(MinHashDedup(), empty)
    assert kept.height == rejects.height == 0
    assert "minhash_cluster" in kept.columns
    kept, rejects = apply_stage(MinHashDedup(), problems_frame([("What is 1+1?", "2")]))
    assert kept.height == 1 and rejects.height == 0


def test_all_rows_identical() -> None:
    rows = problems_frame([("Compute $2^{10}$.", "1024")] * 40)
    kept, rejects = apply_stage(MinHashDedup(), rows)
    assert kept["id"].to_list() == [rows["id"][0]]
    assert kept["minhash_cluster_size"].to_list() == [40]
    assert set(rejects["detail"]) == {f"{rows['id'][0]} (jaccard 1.00)"}


def test_texts_shorter_than_the_shingle_size() -> None:
    rows = problems_frame(
        [("1+1", None), ("$1 + 1$", None), ("1+2", None), ("x", None), ("y", None)]
    )
    kept, rejects = apply_stage(MinHashDedup(ngram=5), rows)
    assert rejects["problem"].to_list() == ["$1 + 1$"]
    assert kept["problem"].to_list() == ["1+1", "1+2", "x", "y"]


def test_null_and_empty_problems_are_never_duplicates() -> None:
    rows = problems_frame([("a", None), ("b", None), ("c", None)]).with_columns(
        pl.Series("problem", [None, None, ""], pl.String)
    )
    kept, rejects = apply_stage(MinHashDedup(), rows)
    assert kept.height == 3 and rejects.height == 0
    assert kept["minhash_cluster"].null_count() == 3


def test_a_one_megabyte_text() -> None:
    rng = random.Random(1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=6)) for _ in range(150_000)]
    big = " ".join(words)
    edited = " ".join([*words[:1000], "changed", *words[1001:]])
    assert len(big) > 1_000_000
    rows = problems_frame([(big, None), ("other", None), (edited, None)])
    _, rejects = apply_stage(MinHashDedup(verify="exact"), rows)
    assert list(map(keeper_of, rejects["detail"])) == [rows["id"][0]]
    assert 0.7 <= float(rejects["detail"][0].split()[-1][:-1]) <= 1  # the exact Jaccard


# ---- keep rules, answer conflicts, stats ----------------------------------------------------


def cluster_rows() -> pl.DataFrame:
    text = "Let $f(x) = x^2 + 3x$. Find $f(5)$."
    variants = [text, text.replace("$f(5)$", "\\(f(5)\\)"), text + " Put your answer in \\boxed{}."]
    frames = [
        problems_frame([(variants[0], None)], source="b"),
        problems_frame([(variants[1], "40")], source="a"),
        problems_frame(
            [(variants[2], "$40$"), ("Unrelated question about dogs.", "3")], source="c"
        ),
    ]
    solutions = ["short", "a much longer solution text", "mid solution", None]
    return pl.concat(frames).with_columns(pl.Series("solution", solutions, pl.String))


@pytest.mark.parametrize(
    ("stage", "keeper"),
    [
        (MinHashDedup(), 0),
        (MinHashDedup(keep="last"), 2),
        (MinHashDedup(keep="longest_solution"), 1),
        (MinHashDedup(keep="has_answer"), 1),
        (MinHashDedup(keep="source_order", source_order=("c", "a")), 2),
    ],
)
def test_keep_rules(stage: MinHashDedup, keeper: int) -> None:
    rows = cluster_rows()
    kept, rejects = apply_stage(stage, rows)
    ids = rows["id"].to_list()
    assert kept["id"].to_list() == sorted([ids[keeper], ids[3]], key=ids.index)
    assert set(map(keeper_of, rejects["detail"])) == {ids[keeper]}
    assert rejects.height == 2


def test_answer_conflicts_are_flagged_and_counted() -> None:
    rows = cluster_rows()
    ctx = StageContext(
        run_dir=Path(tempfile.mkdtemp()), cache_dir=Path(tempfile.mkdtemp()), stage_name="m"
    )
    kept, _ = apply_stage(MinHashDedup(), rows, ctx)
    assert kept["minhash_answer_conflict"].to_list() == [False, False]  # "40" == "$40$"
    assert ctx.stats["conflicting_clusters"] == 0 and ctx.stats["clusters"] == 1
    rows = rows.with_columns(pl.Series("answer", [None, "40", "41", "3"], pl.String))
    kept, _ = apply_stage(MinHashDedup(), rows, ctx)
    assert kept["minhash_answer_conflict"].to_list() == [True, False]
    assert ctx.stats["conflicting_clusters"] == 1
    assert ctx.stats["candidate_pairs"] >= ctx.stats["verified_pairs"] == 2  # one per duplicate
    assert (ctx.stats["bands"], ctx.stats["rows"]) == MinHashDedup().lsh_params()


# ---- cross-dataset mode -----------------------------------------------------------------------


def test_reference_parquet(tmp_path: Path) -> None:
    reference = pl.DataFrame(
        {"id": ["r1", "r2"], "problem": ["Find $x$ if $3x = 12$.", "How many primes are below 20?"]}
    )
    reference.write_parquet(tmp_path / "ref.parquet")
    rows = problems_frame(
        [
            ("Find \\(x\\) if \\(3x=12\\). Put your answer in \\boxed{}.", "4"),
            ("How many primes are below 30?", "10"),
            ("Compute $7 \\cdot 8$.", "56"),
            ("compute $7\\times 8$", "56"),
        ]
    )
    kept, rejects = apply_stage(MinHashDedup(reference=str(tmp_path / "ref.parquet")), rows)
    assert dict(zip(rejects["reason"], map(keeper_of, rejects["detail"]), strict=True)) == {
        "duplicate_of_reference": "r1",
        "duplicate": rows["id"][2],
    }
    assert kept["id"].to_list() == [rows["id"][1], rows["id"][2]]
    assert kept["minhash_reference_match"].null_count() == 2


def write_jsonl(path: Path, problems: list[str]) -> Path:
    import json

    path.write_text("".join(json.dumps({"problem": p, "answer": "1"}) + "\n" for p in problems))
    return path


def test_reference_run_directory_and_fingerprint(tmp_path: Path) -> None:
    old = write_jsonl(tmp_path / "old.jsonl", ["Find $x$ if $3x = 12$.", "What is $2+2$?"])
    curate.Recipe("old", [curate.read(old)], [MinHashDedup()]).run(tmp_path / "old_run")
    new = write_jsonl(tmp_path / "new.jsonl", ["find x if 3x=12", "What is 2 + 3?"])
    recipe = curate.Recipe(
        "new", [curate.read(new)], [MinHashDedup(reference=str(tmp_path / "old_run"))]
    )
    run = recipe.run(tmp_path / "new_run")
    rejects = run.table("rejects").collect()
    assert rejects["reason"].to_list() == ["duplicate_of_reference"]
    assert rejects["detail"].to_list()[0].startswith("old:")
    first = run.manifest["stages"][1]["fingerprint"]
    # the same reference: the stage is skipped; a changed reference: it runs again
    assert recipe.run(tmp_path / "new_run").manifest["stages"][1]["fingerprint"] == first
    write_jsonl(old, ["Something else entirely.", "What is $2+3$?"])
    curate.Recipe("old", [curate.read(old)], [MinHashDedup()]).run(tmp_path / "old_run")
    again = recipe.run(tmp_path / "new_run")
    assert again.manifest["stages"][1]["fingerprint"] != first
    assert again.table("rejects").collect()["problem"].to_list() == ["What is 2 + 3?"]


# ---- configuration and building blocks ------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"threshold": 1.5},
        {"bands": 4},
        {"bands": 20, "rows": 10},
        {"num_perm": 0},
        {"ngram": 0},
        {"keep": "source_order"},
        {"shingle": "sentence"},
        {"source_order": "ab"},
        {"weights": (1.0, 2.0, 3.0)},
        {"weights": (-1.0, 1.0)},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(curate.ConfigError):
        MinHashDedup(**kwargs)  # type: ignore[arg-type]


def test_unknown_column() -> None:
    with pytest.raises(curate.ConfigError, match="no such column"):
        apply_stage(MinHashDedup(column="question"), problems_frame([("a", None)]))


def test_lsh_parameters_match_datasketch() -> None:
    lsh = pytest.importorskip("datasketch.lsh")
    for num_perm in (32, 128):
        for threshold in (0.5, 0.7, 0.9):
            expected = lsh._optimal_param(threshold, num_perm, 0.5, 0.5)
            assert optimal_bands(threshold, num_perm) == expected
    assert MinHashDedup(bands=16, rows=8).lsh_params() == (16, 8)
    assert MinHashDedup(weights=(0.2, 0.8)).lsh_params() == lsh._optimal_param(0.7, 128, 0.2, 0.8)


@pytest.mark.parametrize("sketch", ["oph", "classic"])
def test_signatures_estimate_jaccard_without_bias(sketch: str) -> None:
    positives, negatives = labelled_pairs()
    pairs = [(a, b) for _, a, b in positives[:300] + negatives[:300]]
    sig = signatures([t for p in pairs for t in p], sketch=sketch)  # type: ignore[arg-type]
    sh = shingles([t for p in pairs for t in p])
    errors = []
    for i in range(len(pairs)):
        a, b = (
            set(sh.hashes[sh.offsets[j] : sh.offsets[j + 1]].tolist()) for j in (2 * i, 2 * i + 1)
        )
        exact = len(a & b) / len(a | b) if a | b else 1.0
        errors.append(float((sig.values[2 * i] == sig.values[2 * i + 1]).mean()) - exact)
    assert abs(np.mean(errors)) < 0.01 and np.std(errors) < 0.06


def test_components_from_stars_made_in_tasks_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """`components` with a task map contracts shares of the edges to stars first (the path
    a large run takes); the roots are the same as the plain union-find's."""
    from curate.dedup import clusters
    from curate.stage import run_here

    rng = np.random.default_rng(3)
    left, right = rng.integers(0, 5_000, 20_000), rng.integers(0, 5_000, 20_000)
    plain = clusters.components(6_000, left, right)
    monkeypatch.setattr(clusters, "EDGES_PER_TASK", 1_000)  # 20 tasks
    calls: list[int] = []

    def counted(fn: object, items: list[object], shared: object = None) -> list[object]:
        calls.append(len(items))
        return run_here(fn, items, shared)  # type: ignore[arg-type]

    assert np.array_equal(clusters.components(6_000, left, right, map=counted), plain)
    assert calls == [20] and plain[5_999] == 5_999  # a node with no edge is its own root


def test_lsh_split_by_key_finds_the_same_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past `_SHARE_ROWS` rows a band's keys are split by key into several tasks (a
    shuffle on band keys); the candidate pairs are the same."""
    from curate.dedup import sketch

    rng = np.random.default_rng(5)
    keys = rng.integers(0, 300, (4_000, 6)).astype(np.uint64)  # many shared buckets
    order, side = rng.integers(0, 1 << 62, 4_000).astype(np.uint64), rng.random(4_000) < 0.9
    whole = sketch.candidate_pairs(keys, order, side)
    monkeypatch.setattr(sketch, "_SHARE_ROWS", 500)  # 8 shares per band
    split = sketch.candidate_pairs(keys, order, side)
    assert len(whole) > 1_000 and np.array_equal(whole, split)
