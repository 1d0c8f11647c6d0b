"""SemanticDedup: quality on labelled real pairs, conservation, order, cache, reference mode."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _factories import problems_frame
from hypothesis import HealthCheck, given, settings
from test_stages import ROWS, assert_conserved

import curate
from curate.dedup.clusters import keeper_of
from curate.dedup.semantic import SemanticDedup, choose_index, cross_pairs, neighbour_pairs
from curate.run import apply_stage
from curate.shingles import numbers as numbers_of
from curate.stage import StageContext

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"

# --- labelled pairs built from real problems -------------------------------------------------

WORDING = [
    ("What is the value of", "Find the value of"),
    ("What is", "Compute"),
    ("Find", "Determine"),
    ("Compute", "Calculate"),
    ("Evaluate", "Compute"),
    ("Determine", "Find"),
    ("Calculate", "Compute"),
    ("How many", "Determine how many"),
    ("Suppose", "Assume"),
    ("Simplify", "Simplify the expression"),
]
_INT = re.compile(r"\d+")


def reword(p: str) -> str | None:
    """Rewording: 'Find x' -> 'Determine x', 'What is ...?' -> 'Compute ....' and the like."""
    for old, new in WORDING:
        if old in p:
            q = p.replace(old, new, 1)
            if old.startswith("What is") and q.rstrip().endswith("?"):
                q = q.rstrip()[:-1] + "."
            return q
    return None


def relatex(p: str) -> str | None:
    r"""\frac -> \dfrac, \cdot -> \times, $a+b$ -> \( a + b \)."""
    q = p.replace(r"\frac", r"\dfrac").replace(r"\cdot", r"\times")
    spaced = lambda m: r"\( " + re.sub(r"([+=<>-])", r" \1 ", m.group(1)) + r" \)"  # noqa: E731
    q = re.sub(r"\$([^$]+)\$", spaced, q)
    return q if q != p else None


def reorder(p: str) -> str | None:
    """The question sentence moved to the front."""
    sentences = re.split(r"(?<=[.?!])\s+(?=[A-Z])", p.strip())
    return " ".join([sentences[-1], *sentences[:-1]]) if len(sentences) > 1 else None


def reformat(p: str) -> str:
    """Whitespace and line breaks."""
    return "\n" + p.replace(". ", ".\n\n", 1).replace(" ", "  ", 3) + "  "


def combined(p: str) -> str | None:
    q = reword(p)
    return None if q is None else relatex(q) or q


def all_numbers(p: str) -> str | None:
    """Every number changed: the same problem, but a different one."""
    return _INT.sub(lambda m: str(int(m.group()) * 2 + 3), p) if _INT.search(p) else None


def one_number(p: str) -> str | None:
    """Only the last number changed (+1)."""
    found = list(_INT.finditer(p))
    if not found:
        return None
    m = found[-1]
    return p[: m.start()] + str(int(m.group()) + 1) + p[m.end() :]


POSITIVE: dict[str, Callable[[str], str | None]] = {
    "reword": reword,
    "latex": relatex,
    "reorder": reorder,
    "format": reformat,
    "combined": combined,
}
NEGATIVE: dict[str, Callable[[str], str | None]] = {
    "all_numbers": all_numbers,
    "one_number": one_number,
}


def real_problems(n_math: int, n_gsm: int, seed: int = 0) -> list[str]:
    """Real MATH and GSM8K problems from the bundled demo data (short ones: fast to encode)."""
    math = [json.loads(x)["problem"] for x in (DEMO / "math_train.jsonl").open()]
    gsm = [json.loads(x)["question"] for x in (DEMO / "gsm8k_train.jsonl").open()]
    rng = random.Random(seed)
    math = [p for p in math if len(p) < 300]
    return rng.sample(math, n_math) + rng.sample(gsm, n_gsm)


def labelled_pool(base: list[str], unrelated: list[str]) -> pl.DataFrame:
    """One row per variant: its text, its kind, whether it duplicates its original."""
    rows = []
    for i, p in enumerate(base):
        for kinds, positive in ((POSITIVE, True), (NEGATIVE, False)):
            for kind, make in kinds.items():
                q = make(p)
                if q is not None and q != p:
                    rows.append((f"orig{i}", kind, positive, q))
    rows += [(None, "unrelated", False, q) for q in unrelated]
    return pl.DataFrame(rows, schema=["original", "kind", "positive", "problem"], orient="row")


def precision_recall(pool: pl.DataFrame, matched: list[str | None]) -> tuple[float, float]:
    frame = pool.with_columns(pl.Series("matched", matched, pl.String))
    own = frame["matched"].eq_missing(frame["original"])
    tp = int((own & frame["positive"]).sum())
    fp = int((frame["matched"].is_not_null() & ~(own & frame["positive"])).sum())
    positives = int(frame["positive"].sum())
    return tp / max(tp + fp, 1), tp / max(positives, 1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the module: each text is encoded once for all tests."""
    return tmp_path_factory.mktemp("semantic-cache")


def context(cache: Path, seed: int = 0) -> StageContext:
    return StageContext(run_dir=cache, cache_dir=cache, stage_name="semantic_dedup", seed=seed)


def run_stage(stage: SemanticDedup, rows: pl.DataFrame, cache: Path) -> tuple[pl.DataFrame, ...]:
    ctx = context(cache)
    kept, rejects = apply_stage(stage, rows, ctx)
    return kept, rejects, ctx.stats  # type: ignore[return-value]


def test_precision_and_recall_on_labelled_real_pairs(cache: Path, tmp_path: Path) -> None:
    problems = real_problems(32, 10)
    base, unrelated = problems[:22] + problems[32:38], problems[22:32] + problems[38:]
    pool = labelled_pool(base, unrelated)
    reference = tmp_path / "originals.parquet"
    pl.DataFrame({"id": [f"orig{i}" for i in range(len(base))], "problem": base}).write_parquet(
        reference
    )
    rows = problems_frame([(p, None) for p in pool["problem"]], source="variants")
    report = {}
    for numbers in (True, False):
        stage = SemanticDedup(reference=str(reference), numbers_must_match=numbers)
        kept, rejects, _ = run_stage(stage, rows, cache)
        matched = pl.concat([kept, rejects.drop("stage", "reason", "detail")], how="diagonal")
        matched = rows.join(matched, on="id", how="left")["semantic_reference_match"].to_list()
        report[numbers] = precision_recall(pool, matched)
        by_kind = pool.with_columns(pl.Series("m", matched).is_not_null())
        print(f"numbers_must_match={numbers}: precision, recall = {report[numbers]}")
        print(by_kind.group_by("kind").agg(pl.len(), pl.col("m").mean()).sort("kind"))
    precision, recall = report[True]
    assert precision >= 0.95 and recall >= 0.95, report
    # MiniLM alone calls most one-number changes duplicates: the numbers rule is what fixes it
    assert report[False][0] < precision


def test_rewordings_cluster_with_their_original(cache: Path) -> None:
    problems = real_problems(6, 2, seed=1)
    texts = [t for p in problems for t in (p, reword(p) or p + " ", relatex(p) or p)]
    rows = problems_frame([(t, None) for t in texts])
    kept, rejects, stats = run_stage(SemanticDedup(), rows, cache)
    assert kept["problem"].to_list() == problems
    keepers = dict(zip(rows["id"], [rows["id"][i - i % 3] for i in range(len(texts))], strict=True))
    details = rejects["detail"].to_list()
    assert all(keepers[i] == keeper_of(d) for i, d in zip(rejects["id"], details, strict=True))
    assert all(re.search(r" \(cosine (0\.9\d|1\.00)\)$", d) for d in details)
    assert set(rejects["reason"]) == {"duplicate"}
    assert stats["clusters"] == len(problems) and stats["index"] == "flat"
    assert kept["semantic_cluster_size"].to_list() == [3] * len(problems)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=ROWS)
def test_conserves_rows(cache: Path, data: list[tuple[str, str | None]]) -> None:
    rows = problems_frame(data)
    for stage in (SemanticDedup(), SemanticDedup(keep="has_answer", numbers_must_match=False)):
        kept, rejects = apply_stage(stage, rows, context(cache))
        assert_conserved(rows, kept, rejects)


def test_clusters_do_not_depend_on_input_order(cache: Path) -> None:
    problems = real_problems(8, 2, seed=2)
    texts = [t for p in problems for t in (p, reword(p) or p, reorder(p) or p)]
    texts += [one_number(p) or p for p in problems]
    rows = problems_frame([(t, str(i % 3)) for i, t in enumerate(texts)])

    def clusters(frame: pl.DataFrame) -> set[frozenset[str]]:
        _, rejects, _ = run_stage(SemanticDedup(keep="longest_solution"), frame, cache)
        out = rejects.with_columns(pl.col("detail").map_elements(keeper_of, pl.String))
        out = out.group_by("detail").agg("id")
        return {frozenset([d, *ids]) for d, ids in out.iter_rows()}

    shuffled = rows.sample(fraction=1.0, shuffle=True, seed=3)
    assert clusters(rows) == clusters(shuffled)
    assert clusters(rows)  # something was clustered


def test_deterministic_and_cached(cache: Path) -> None:
    rows = problems_frame([(p, None) for p in real_problems(5, 5, seed=4)] * 2)
    first = run_stage(SemanticDedup(), rows, cache)
    again = run_stage(SemanticDedup(), rows, cache)
    assert first[0].equals(again[0]) and first[1].equals(again[1])
    assert again[2]["encoded"] == 0 and again[2]["cached"] == 10


def _write(path: Path, problems: list[str]) -> Path:
    path.write_text("".join(json.dumps({"problem": p, "answer": "1"}) + "\n" for p in problems))
    return path


def test_rethreshold_in_a_recipe_reuses_the_run_cache(tmp_path: Path) -> None:
    problems = real_problems(0, 12, seed=5)
    source = _write(tmp_path / "pool.jsonl", problems + [f"Question: {p}" for p in problems[:4]])

    def run(threshold: float) -> curate.Run:
        recipe = curate.Recipe("s", [curate.read(source)], [SemanticDedup(threshold=threshold)])
        return recipe.run(tmp_path / "run")

    first = run(0.9).stages[-1]
    second = run(0.95).stages[-1]
    assert first.stats["encoded"] == first.stats["texts"] == 16 and first.stats["cached"] == 0
    assert second.stats["encoded"] == 0 and second.stats["cached"] == first.stats["texts"]
    assert list((tmp_path / "run" / "cache" / "embeddings").iterdir())
    assert run(0.95).stages[-1].seconds == second.seconds  # unchanged: skipped


def test_reference_mode_against_parquet_and_run(cache: Path, tmp_path: Path) -> None:
    old = real_problems(0, 8, seed=6)
    source = _write(tmp_path / "old.jsonl", old)
    earlier = curate.Recipe("old", [curate.read(source)], []).run(tmp_path / "old-run")
    pool = [reword(old[0]) or old[0], old[1], one_number(old[2]) or "x", *real_problems(0, 3, 7)]
    rows = problems_frame([(p, None) for p in pool], source="new")
    ref_ids = earlier.table("problems").select("id").collect()["id"].to_list()
    parquet = tmp_path / "ref.parquet"
    earlier.table("problems").collect().write_parquet(parquet)
    for reference in (str(tmp_path / "old-run"), parquet):  # a Path is taken too
        stage = SemanticDedup(reference=reference)  # type: ignore[arg-type]
        _, rejects, stats = run_stage(stage, rows, cache)
        assert rejects["id"].to_list() == rows["id"][:2].to_list()
        assert set(rejects["reason"]) == {"duplicate_of_reference"}
        assert [keeper_of(d) for d in rejects["detail"]] == ref_ids[:2]
        assert stats["reference_rows"] == 8 and stats["reference_matches"] == 2
    # the fingerprint follows the reference's contents
    before = SemanticDedup(reference=str(parquet)).describe()
    pl.read_parquet(parquet).head(4).write_parquet(parquet)
    assert SemanticDedup(reference=str(parquet)).describe() != before


def test_reference_with_duplicates_inside_pool(cache: Path, tmp_path: Path) -> None:
    ref, fresh = real_problems(0, 2, seed=8), real_problems(0, 1, seed=9)[0]
    parquet = tmp_path / "ref.parquet"
    pl.DataFrame({"id": ["r0", "r0b", "r1"], "problem": [ref[0], ref[0], ref[1]]}).write_parquet(
        parquet
    )
    rows = problems_frame([(fresh, None), (ref[0], None), (fresh, None), (ref[0], None)])
    kept, rejects, _ = run_stage(SemanticDedup(reference=str(parquet)), rows, cache)
    assert kept["id"].to_list() == [rows["id"][0]]
    details = [keeper_of(d) for d in rejects["detail"]]
    reasons = dict(zip(rejects["id"], zip(rejects["reason"], details, strict=True), strict=True))
    assert reasons[rows["id"][1]] == ("duplicate_of_reference", "r0")
    assert reasons[rows["id"][3]] == ("duplicate_of_reference", "r0")
    assert reasons[rows["id"][2]] == ("duplicate", rows["id"][0])


def test_edge_cases(cache: Path) -> None:
    empty = problems_frame([])
    kept, rejects, stats = run_stage(SemanticDedup(), empty, cache)
    assert kept.height == rejects.height == 0 and stats["texts"] == 0
    one = problems_frame([("What is $2+2$?", "4")])
    assert run_stage(SemanticDedup(), one, cache)[0].height == 1
    same = problems_frame([("What is $2+2$?", "4")] * 30)
    kept, rejects, stats = run_stage(SemanticDedup(), same, cache)
    assert kept.height == 1 and set(rejects["detail"]) == {f"{same['id'][0]} (cosine 1.00)"}
    assert stats["texts"] == 1 and stats["pairs"] == 0 and stats["clusters"] == 1
    blank = problems_frame([("", None), ("   ", None), ("", None), ("What is 1?", None)])
    blank = blank.with_columns(pl.when(pl.int_range(4) == 2).then(None).otherwise("problem"))
    assert run_stage(SemanticDedup(), blank, cache)[1].height == 0  # blanks are no duplicates
    long = "Let $x_1, x_2, \\dots$ be reals with " + " + ".join(f"x_{i}" for i in range(3000))
    kept, rejects, _ = run_stage(SemanticDedup(), problems_frame([(long, None)] * 2), cache)
    assert kept.height == 1 and rejects.height == 1


def test_options_are_checked(cache: Path) -> None:
    rows = problems_frame([("a", None)])
    for bad, match in [
        (SemanticDedup(threshold=1.5), "cosine"),
        (SemanticDedup(index="annoy"), "index"),  # type: ignore[arg-type]
        (SemanticDedup(column="question"), "column"),
        (SemanticDedup(model="/no/such/folder"), "never downloads"),
        (SemanticDedup(keep="source_order"), "source_order"),
    ]:
        with pytest.raises(curate.ConfigError, match=match):
            run_stage(bad, rows, cache)


def test_the_numbers_rule() -> None:
    n = numbers_of
    assert n("Find $x$ if $2x = 1{,}000$.") == n("If 2x=1,000, find x.")
    assert n(r"$\dfrac{1}{2}+2.5$") == n(r"$\frac{1}{2} + 2.5$") == ["1", "2", "2", "5"]
    assert n("(-5, 2)") != n("(5, 2)") and n("10 - 3") != n("10 + 3")
    assert n("x + 7") != n("x + 8") and n("no numbers") == []
    # a multiset: the order does not count (a reworded problem may move its numbers)
    assert n("A has 3 apples and B has 5.") == n("B has 5 apples and A has 3.")


def _planted(n: int, dup: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Random unit vectors, ``dup`` of them with a near copy (cosine ~0.98) at the end."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n + dup, 64)).astype(np.float32)
    v[n:] = v[:dup] + 0.1 * rng.standard_normal((dup, 64)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v, {(i, n + i) for i in range(dup)}


@pytest.mark.parametrize("index", ["flat", "ivf", "hnsw"])
def test_indexes_find_planted_pairs(index: str) -> None:
    vectors, planted = _planted(3000, 50)
    left, right, sims, used = neighbour_pairs(vectors, 0.9, index=index)  # type: ignore[arg-type]
    assert used == index
    assert set(zip(left.tolist(), right.tolist(), strict=True)) == planted
    exact = vectors[left] @ vectors[right].T
    assert np.allclose(np.diag(exact), sims, atol=1e-5)
    q, b, _, _ = cross_pairs(vectors[3000:], vectors[:3000], 0.9, index=index)  # type: ignore[arg-type]
    assert sorted(zip(b.tolist(), q.tolist(), strict=True)) == [(i, i) for i in range(50)]


def test_ivf_is_deterministic() -> None:
    vectors, _ = _planted(3000, 300, seed=2)
    first = neighbour_pairs(vectors, 0.9, index="ivf", seed=5)
    again = neighbour_pairs(vectors, 0.9, index="ivf", seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first[:3], again[:3], strict=True))


def test_flat_pairs_match_brute_force() -> None:
    vectors, _ = _planted(400, 40, seed=1)
    for threshold in (0.2, 0.9):
        left, right, _, _ = neighbour_pairs(vectors, threshold, index="flat")
        sims = vectors @ vectors.T
        i, j = np.nonzero(np.triu(sims >= threshold, k=1))
        assert left.tolist() == i.tolist() and right.tolist() == j.tolist()


def test_auto_index_switch() -> None:
    assert choose_index(10) == "flat" and choose_index(10**7) == "ivf"
    assert choose_index(10, "ivf") == "flat"  # an approximate index over a few vectors: no


class SmallBatches(SemanticDedup):
    """SemanticDedup in batches of 4 rows: a table of 30 rows is 8 batches."""

    batch_rows = 4


def test_batches_in_a_run_equal_one_batch_in_memory(cache: Path, tmp_path: Path) -> None:
    problems = real_problems(6, 4, seed=10)
    texts = [t for p in problems[:6] for t in (p, reword(p) or p, relatex(p) or p)]
    texts += problems[6:] + [problems[0], one_number(problems[1]) or "x"] * 4
    source = tmp_path / "pool.jsonl"
    source.write_text("".join(json.dumps({"problem": t, "answer": "1"}) + "\n" for t in texts))
    run = curate.Recipe("s", [curate.read(source)], [SmallBatches(keep="has_answer")]).run(
        tmp_path / "run"
    )
    rows = run.table("ingest").collect()
    kept, rejects, stats = run_stage(SemanticDedup(keep="has_answer"), rows, cache)
    assert run.table("problems").collect().equals(kept)
    assert run.table("rejects").collect().drop("stage").equals(rejects.drop("stage"))
    result = run.stages[-1]
    assert result.stats["texts"] == stats["texts"] and result.stats["pairs"] == stats["pairs"]
    # a text seen in an earlier batch is read from the cache, not encoded again
    assert result.stats["encoded"] == result.stats["texts"]
    parts = tmp_path / "run" / "stages"
    assert not list(parts.rglob("*.parquet.tmp*"))


def clustered_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 60 topics, with every tenth a near copy of the one before."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(60, dim))
    v = topics[rng.integers(0, 60, n)] + 0.6 * rng.normal(size=(n, dim))
    v[1::10] = v[0::10][: v[1::10].shape[0]] + 0.05 * rng.normal(size=(v[1::10].shape[0], dim))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def test_partitioned_ivf_finds_exactly_what_faiss_ivf_finds() -> None:
    from curate.dedup.ivf import partitioned_pairs

    v = clustered_vectors(6_000)
    fl, fr, _, _ = neighbour_pairs(v, 0.95, index="flat")
    flat = set(zip(fl.tolist(), fr.tolist(), strict=True))
    ivf_index = semantic_ivf_pairs(v, 0.95)
    left, right, sims = partitioned_pairs(v, 0.95, seed=0)
    found = set(zip(left.tolist(), right.tolist(), strict=True))
    assert found == ivf_index and found <= flat and len(found) >= 0.95 * len(flat)
    assert np.all(sims >= 0.95) and np.all(left < right)
    assert list(zip(left.tolist(), right.tolist(), strict=True)) == sorted(found)

    # the tasks may run anywhere, in any order: the result is the same
    def reversed_map(fn: Callable[..., object], items: list[object], shared: object) -> list:
        return [fn(shared, i) for i in items[::-1]][::-1]

    again = partitioned_pairs(v, 0.95, seed=0, map=reversed_map)
    assert all(np.array_equal(a, b) for a, b in zip(again, (left, right, sims), strict=True))
    assert neighbour_pairs(v, 0.95, index="ivf")[3] == "ivf"


def semantic_ivf_pairs(
    v: np.ndarray, threshold: float, *, per_list: int = 256
) -> set[tuple[int, int]]:
    """The pairs faiss' own IVF index finds with the same lists, probes and seed (trained
    on at most ``per_list`` vectors per list: faiss' ``max_points_per_centroid``)."""
    import faiss

    from curate.dedup.ivf import nlist_for

    nlist = nlist_for(v.shape[0])
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(v.shape[1]), v.shape[1], nlist, 0)
    index.cp.seed = 0
    index.cp.max_points_per_centroid = per_list
    index.train(v)
    index.add(v)
    index.nprobe = min(nlist, 16)
    lims, _, b = index.range_search(v, threshold)
    q = np.repeat(np.arange(v.shape[0]), np.diff(lims).astype(np.int64))
    return {(min(i, j), max(i, j)) for i, j in zip(q.tolist(), b.tolist(), strict=True) if i != j}


def test_partitioned_ivf_reads_its_vectors_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vectors on disk (a `Stage.arrays` file): rows read a chunk at a time, the tasks get
    the file's path, not vectors, and the pairs are those of the vectors in memory."""
    from curate.dedup import ivf

    monkeypatch.setattr(ivf, "_READ", 4096)  # several chunks at a small size
    v = clustered_vectors(9_500, dim=16, seed=3)
    np.save(tmp_path / "v.npy", v)
    select = np.random.default_rng(0).permutation(v.shape[0])[:9_000]  # some rows, reordered
    on_disk = ivf.Vectors(ivf.Stacked((str(tmp_path / "v.npy"),)), select)

    def paths_only(fn: Callable[..., object], items: list[object], shared: tuple) -> list:
        assert all(isinstance(p, str) for p in shared[0].source.pieces)  # no vectors travel
        return [fn(shared, i) for i in items]

    found = ivf.partitioned_pairs(on_disk, 0.95, seed=0, map=paths_only)
    here = ivf.partitioned_pairs(v[select], 0.95, seed=0)
    assert found[0].size and all(np.array_equal(a, b) for a, b in zip(found, here, strict=True))
    pairs = set(zip(found[0].tolist(), found[1].tolist(), strict=True))
    assert pairs == semantic_ivf_pairs(v[select], 0.95)
    assert neighbour_pairs(on_disk, 0.95, index="flat")[0].size >= found[0].size


def test_partitioned_ivf_trains_on_the_sample_faiss_draws() -> None:
    """Above ``train_per_list`` rows per list the quantizer trains on a seeded sample: the
    one faiss' k-means draws itself, so the lists (and pairs) are faiss' own."""
    from curate.dedup.ivf import nlist_for, partitioned_pairs, training_rows

    v = clustered_vectors(6_000)
    nlist = nlist_for(v.shape[0])
    rows = training_rows(v.shape[0], nlist, seed=0, per_list=30)
    assert rows.size == 30 * nlist == np.unique(rows).size
    left, right, _ = partitioned_pairs(v, 0.95, seed=0, train_per_list=30)
    found = set(zip(left.tolist(), right.tolist(), strict=True))
    assert found == semantic_ivf_pairs(v, 0.95, per_list=30)


def test_the_global_step_reads_vectors_from_disk_as_from_memory(tmp_path: Path) -> None:
    """The vectors as a `.npy` path (the runner), an array (`Stage.apply`) or a table column
    (a direct caller): the same rows rejected, the same details."""
    from curate.dedup.semantic import _KEY, _NUM, _VEC

    v = clustered_vectors(3_000, dim=16, seed=4)
    v = np.concatenate([v, v[:200]])  # the same texts again: rows of one text
    keys = [f"t{i}" for i in range(3_000)] + [f"t{i}" for i in range(200)]
    table = pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(keys))],
            "answer": ["1"] * len(keys),
            _KEY: keys,
            _NUM: np.zeros(len(keys), np.uint64),
        }
    )
    np.save(tmp_path / "v.npy", v)
    stage = SemanticDedup(threshold=0.95, index="ivf")

    def step(arrays: dict[str, object], frame: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
        ctx = StageContext.temporary(stage.name)
        ctx.arrays = arrays
        return stage.global_step(frame, ctx).collect(), ctx.stats

    disk, stats = step({_VEC: str(tmp_path / "v.npy")}, table)
    memory, _ = step({_VEC: v}, table)
    column, _ = step({}, table.with_columns(pl.Series(_VEC, v, pl.Array(pl.Float32, 16))))
    assert disk.equals(memory) and disk.equals(column)
    assert stats["index"] == "ivf" and stats["texts"] == 3_000 and stats["pairs"] > 0
    assert disk["semantic_dup_of"].null_count() < disk.height - 200


def test_a_batch_of_blank_texts_in_a_run(cache: Path, tmp_path: Path) -> None:
    """A batch whose texts are all blank has vectors as wide as the others' (one array)."""
    solutions = ["Add 2 and 2.", "Sum 2 and 2.", "Add 3 and 3.", "Subtract 1.", *[None] * 4]
    solutions += ["Add 2 and 2.", "Subtract 2."]
    rows = [
        {"problem": f"Problem {i}?", "solution": t, "answer": "1"} for i, t in enumerate(solutions)
    ]
    source = tmp_path / "pool.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stage = SmallBatches(column="solution")  # batches of 4: the second has no text
    run = curate.Recipe("s", [curate.read(source)], [stage]).run(tmp_path / "run")
    kept, rejects, _ = run_stage(
        SemanticDedup(column="solution"), run.table("ingest").collect(), cache
    )
    assert run.table("problems").collect().equals(kept) and rejects.height >= 1
    assert run.table("rejects").collect().drop("stage").equals(rejects.drop("stage"))


def test_vectors_read_rows_of_npy_files(tmp_path: Path) -> None:
    """`Vectors`: any rows, in any order and repeated, of .npy files (format 1.0, as
    np.save writes it, and 2.0, as the runner writes `Stage.arrays`) and arrays."""
    from curate.dedup.ivf import Vectors
    from curate.dedup.sketch import Stacked

    rng = np.random.default_rng(0)
    a = rng.normal(size=(5_000, 6)).astype(np.float32)
    np.save(tmp_path / "v1.npy", a)
    with (tmp_path / "v2.npy").open("wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": a.shape}
        np.lib.format.write_array_header_2_0(f, header)  # type: ignore[no-untyped-call]
        f.write(a.tobytes())
    picks = [
        np.zeros(0, np.int64),
        rng.integers(0, 5_000, 700),
        np.arange(1_000, 3_000),
        np.sort(rng.choice(5_000, 2_000, replace=False)),
    ]
    for name in ("v1.npy", "v2.npy"):
        vectors = Vectors(Stacked((str(tmp_path / name),)))
        for rows in picks:
            assert np.array_equal(vectors.take(rows), a[rows])
    two = Vectors(Stacked((str(tmp_path / "v1.npy"), a[:10])), np.array([5_003, 2, 4_999]))
    assert np.array_equal(two.take(), a[[3, 2, 4_999]]) and len(two) == 3 and two.dim == 6
