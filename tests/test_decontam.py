"""Decontamination: benchmark registry, tokens and n-gram index, the stage's contract."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import polars as pl
import pytest
from _factories import problems_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_stages import assert_conserved

import curate
from curate.decontam import (
    Decontaminate,
    benchmarks,
    bundled,
    catalog,
    load_benchmark,
    register_benchmark,
    unregister_benchmark,
)
from curate.decontam.ngram import NgramIndex, tokenize, tokenize_many
from curate.run import apply_stage

DATA = Path(curate.decontam.__file__).parent / "data"
REQUIRED = ["aime24", "aime25", "amc23", "math500", "gsm8k", "minerva", "olympiadbench"]
AMC = load_benchmark("amc23").items.row(0, named=True)  # Cities A and B are 45 miles apart...


def tmp() -> Path:
    return Path(tempfile.mkdtemp())


# ------------------------------------------------------------------ registry


def test_bundled_benchmarks_have_versions_origins_and_licenses() -> None:
    names = bundled()
    assert {*REQUIRED, "hmmt_feb24", "hmmt_feb25"} <= set(names)
    cat = catalog()
    assert cat["name"].to_list() == names
    assert cat["license"].str.len_chars().min() > 0 and cat["origin"].str.contains("@").all()
    readme = (DATA / "README.md").read_text()
    total = 0
    for name in names:
        b = load_benchmark(name)
        blob = (DATA / f"{name}.jsonl").read_bytes()
        total += len(blob)
        assert b.version == hashlib.blake2b(blob, digest_size=16).hexdigest()
        assert b.items.columns == ["id", "problem", "answer"]
        assert b.items["problem"].null_count() == 0
        assert f"`{name}.jsonl`" in readme
    assert total < 4_000_000  # the package stays small
    assert load_benchmark("aime24").n_items == 30  # two wordings of each, counted once
    assert load_benchmark("math500").n_items == 500


def test_register_and_unknown_benchmarks(tmp_path: Path) -> None:
    path = tmp_path / "quiz.csv"
    path.write_text("q,a\nWhat is the sum of the first ten positive odd integers?,100\n")
    b = register_benchmark("quiz", path, problem="q", answer="a")
    try:
        assert "quiz" in benchmarks() and b.n_items == 1 and b.items["answer"][0] == "100"
        assert load_benchmark("quiz").version == b.version
        with pytest.raises(curate.ConfigError, match="bundled"):
            register_benchmark("math500", path, problem="q")
    finally:
        unregister_benchmark("quiz")
    assert "quiz" not in benchmarks()
    other = tmp_path / "other.jsonl"
    other.write_text('{"question": "What is 6 times 7?", "answer": "42"}\n')
    assert load_benchmark(str(other)).name == "other"  # a path works without registering
    with pytest.raises(curate.ConfigError, match="unknown benchmark 'nope'"):
        load_benchmark("nope")


def test_empty_benchmark_matches_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    rows = problems_frame([(AMC["problem"], AMC["answer"])])
    stage = Decontaminate(benchmarks=[str(tmp_path / "empty.jsonl")])
    ctx = curate.StageContext(run_dir=tmp(), cache_dir=tmp(), stage_name="d")
    kept, rejects = apply_stage(stage, rows, ctx)
    assert kept.height == 1 and rejects.height == 0
    assert ctx.stats["decontam"]["benchmarks"]["empty"]["items"] == 0


# ------------------------------------------------------------------ tokens


def test_tokens_ignore_latex_form() -> None:
    same = [
        r"Find $\dfrac{1}{2} + x^{2}$ if $x \geq 3$ and $15a\cdot b = 1{,}000$.",
        r"find \(\frac{1}{2}+x^2\) if \(x\ge 3\) and $15 a \times b=1,000$ .",
        "Find  $\\tfrac{1}{2}+x^{2}$  if $x\\geqslant3$ and $\\left(15a\\right)\\cdot b=1,000$.",
    ]
    assert len({tuple(tokenize(t)) for t in same}) == 1
    assert tokenize("求 $x$ 的值。") == ["求", "x", "的", "值"]
    assert tokenize("Найдите $x^2$.") == ["найдите", "x", "^", "2"]


# fmt: off
_PIECES = [
    r"\left", r"\right", r"\leq", r"\le", r"\dfrac", r"\frac", r"\quad", r"\,", r"\!", r"\big",
    r"\Big", r"\bigg", r"\cdot", r"\times", r"\Leq", r"\alpha", "\\\\", "$", "{", "}", "(", ")",
    "^", "_", "-", "+", "=", "<", ">", "|", "/", "*", "x", "ab", "Find", "3", "12", "0", ".",
    ",", "'", "’", "–", "“", "é", "π", "的", "，", "。", "Ω", "ß", "ﬁ", "²", "½", "١", " ", "  ",
    "\n", "\u00a0", "[asy]", "[/asy]", "[ASY]", "(0,6)",
]
# fmt: on
LATEXISH = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(LATEXISH | st.text(max_size=20), min_size=1, max_size=8))
def test_fast_tokenizer_equals_the_definition(texts: list[str]) -> None:
    many = tokenize_many(texts)
    assert [many.row(i) for i in range(len(texts))] == [tokenize(t) for t in texts]


def test_fast_tokenizer_on_every_bundled_problem() -> None:
    texts = pl.concat([load_benchmark(n).items["problem"] for n in bundled()]).to_list()
    many = tokenize_many(texts)
    assert [many.row(i) for i in range(len(texts))] == [tokenize(t) for t in texts]


# ------------------------------------------------------------------ index


def test_index_matches_ngrams_whole_short_items_and_skips_boilerplate() -> None:
    items = [
        "one two three four five six seven",
        "alpha beta gamma",  # short: matched whole
        "so so",  # shorter than min_tokens: never matched
        "common words here now plus one",
        "common words here now plus two",
        "common words here now plus three",
    ]
    idx = NgramIndex(items, n=4, min_tokens=3, max_df=2, ignore=["please reason step by step"])
    texts = [
        "x one two three four y",  # item 0
        "Alpha, beta; gamma!",  # item 1
        "so so so",  # nothing
        "common words here now",  # in 3 items > max_df: boilerplate
        "please reason step by step",
        "",
    ]
    m = idx.lookup(tokenize_many(texts))
    assert sorted(set(zip(m.row.tolist(), m.item.tolist(), strict=True))) == [(0, 0), (1, 1)]
    assert idx.boilerplate >= 1


# ------------------------------------------------------------------ stage

POOL = st.lists(
    st.tuples(
        st.sampled_from([AMC["problem"], AMC["problem"].upper(), "What is 1+1?", "", "  "])
        | st.text(max_size=40),
        st.sampled_from([None, "27", "28", r"\frac{1}{2}"]),
    ),
    max_size=12,
)


@pytest.mark.parametrize(
    "stage",
    [Decontaminate("amc23"), Decontaminate(["amc23", "gsm8k"], mode="annotate", min_tokens=10)],
    ids=["drop", "annotate"],
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=POOL)
def test_decontaminate_conserves_rows(stage: Decontaminate, data: list) -> None:
    rows = problems_frame(data)
    kept, rejects = apply_stage(stage, rows)
    assert_conserved(rows, kept, rejects)
    if stage.mode == "annotate":
        assert rejects.height == 0


def test_drop_records_the_hit_and_is_deterministic() -> None:
    text = "Here is a problem: " + AMC["problem"] + " Explain."
    rows = problems_frame([(text, "27"), ("What is 1+1?", "2"), (AMC["problem"], None)])
    stage = Decontaminate(["amc23", "math500"])
    kept, rejects = apply_stage(stage, rows)
    again = apply_stage(stage, rows)
    assert kept.equals(again[0]) and rejects.equals(again[1])
    assert kept["problem"].to_list() == ["What is 1+1?"]
    assert kept["contamination"].to_list() == [[]]
    assert rejects["reason"].unique().to_list() == ["contamination"]
    detail = json.loads(rejects["detail"][0])
    assert detail["benchmark"] == "amc23" and detail["item"] == AMC["id"]
    assert detail["rule"] == "ngram" and detail["coverage"] == 1.0
    assert detail["same_answer"] is True and "alicia lives in a" in detail["match"]


def test_answer_aware_rule() -> None:
    words = AMC["problem"].split()
    half = " ".join(words[: len(words) // 2 + 4]) + " What is the total?"  # ~55% of the item
    rows = problems_frame([(half, "27"), (half, "99"), (half, None)])
    kept, rejects = apply_stage(Decontaminate("amc23"), rows)
    assert rejects["answer"].to_list() == ["27", None]  # a different answer clears it
    kept, rejects = apply_stage(Decontaminate("amc23", answer_aware=False), rows)
    assert rejects.height == 3
    kept, _ = apply_stage(Decontaminate("amc23", min_coverage=0.9), rows)
    assert kept["answer"].to_list() == ["99", None]  # same answer halves the need


def test_non_latin_and_empty_inputs() -> None:
    cmath = load_benchmark("cmath").items.row(0, named=True)
    rows = problems_frame(
        [("题目：" + cmath["problem"], cmath["answer"]), ("Найдите $x$, если $x+1=2$.", "1")]
    )
    kept, rejects = apply_stage(Decontaminate("cmath"), rows)
    assert rejects["problem"].to_list() == ["题目：" + cmath["problem"]]
    empty = problems_frame([])
    kept, rejects = apply_stage(Decontaminate("all"), empty)
    assert kept.height == rejects.height == 0 and "contamination" in kept.columns


def test_describe_has_versions_so_a_changed_benchmark_reruns(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"problem": "Compute the product of all primes below 20.", "answer": "1"}\n')
    stage = Decontaminate(["amc23", str(path)])
    first = stage.describe()
    assert first["benchmarks"]["amc23"] == load_benchmark("amc23").version
    path.write_text('{"problem": "Compute the product of all primes below 30.", "answer": "1"}\n')
    assert stage.describe()["benchmarks"]["mine"] != first["benchmarks"]["mine"]
    with pytest.raises(curate.ConfigError, match="mode"):
        Decontaminate(mode="remove")  # type: ignore[arg-type]


def test_run_manifest_and_report(tmp_path: Path) -> None:
    from curate.decontam import decontam_report, format_report

    rows = [{"problem": AMC["problem"], "answer": "27"}, {"problem": "What is 3+3?", "answer": "6"}]
    (tmp_path / "pool.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    recipe = curate.Recipe(
        "r", [curate.read(tmp_path / "pool.jsonl")], [Decontaminate(["amc23", "gsm8k"])]
    )
    run = recipe.run(tmp_path / "run")
    stats = run.stages[-1].stats["decontam"]
    assert stats["rows_flagged"] == 1 and stats["benchmarks"]["amc23"]["items_hit"] == 1
    assert run.sql("SELECT reason FROM rejects").rows() == [("contamination",)]
    report = decontam_report(tmp_path / "run")
    assert report.filter(pl.col("benchmark") == "amc23")["rows_hit"].item() == 1
    assert "amc23" in format_report(run)
    with pytest.raises(curate.RunError, match="no finished Decontaminate"):
        format_report(curate.Recipe("s", recipe.sources, []).run(tmp_path / "run2"))


# ------------------------------------------------------------ common n-grams, figures, numbers

FIG = (
    "[asy] size(180); pair A=(0,6), B=(0,0), C=(8,0), D=(0,3), E=(4,0), F=(8/3,2);"
    " draw(E--A--C--D); draw((-1,0)--(10,0), EndArrow); draw((0,-1)--(0,8), EndArrow);"
    ' label("$A(0,6)$", A, W); label("$B(0,0)$", B, SW); label("$C(8,0)$", C, S); [/asy]'
)
SETUP = "In the diagram, $D$ and $E$ are the midpoints of $\\overline{AB}$ and $\\overline{BC}$."


def test_asymptote_block_is_one_token_named_by_its_numbers() -> None:
    (token,) = tokenize(FIG)
    assert token.startswith("asy") and len(token) == 19
    respaced = FIG.replace("; ", ";\n  ").replace("draw", "draw ").replace('"$A$"', '"\\(A\\)"')
    assert tokenize(respaced) == [token]  # spacing, label spelling: the same figure
    assert tokenize(FIG.replace("(8,0)", "(9,0)")) != [token]  # another point: another figure
    texts = [f"Find $x$. {FIG} Go.", FIG.upper(), "[asy] unclosed", None]
    many = tokenize_many(texts)
    assert [many.row(i) for i in range(4)] == [tokenize(t or "") for t in texts]


def test_shared_figure_alone_is_no_contamination(tmp_path: Path) -> None:
    bench = tmp_path / "figs.jsonl"
    item = f"{SETUP} Determine the area of quadrilateral $DBEF$. {FIG}"
    bench.write_text(json.dumps({"problem": item, "answer": "8"}) + "\n")
    rows = problems_frame(
        [
            (f"Find the slope of the line through $C$ and $D$. {FIG}", "1"),  # the figure only
            (f"Problem 3. {item}", "8"),  # the item itself
            (f"{SETUP} Determine the area of quadrilateral $DBEF$.", None),  # figure left out
        ]
    )
    out = Decontaminate(str(bench), mode="annotate", answer_aware=False).apply(rows.lazy(), _ctx())
    flagged = out.collect()["contamination"].list.len().to_list()
    assert flagged == [0, 1, 1]


def test_common_ngrams_of_a_reference_corpus_never_match(tmp_path: Path) -> None:
    template = (
        "(A) Line (B) Circle (C) Parabola (D) Ellipse (E) Hyperbola "
        "Enter the letter of the correct option."
    )
    items = [f"Which curve is defined by $r = 2\\sin\\theta$? {template}"]
    reference = [f"Which curve is defined by $x^2 = {k}y$? {template}" for k in range(6)]
    row = f"Which curve is defined by $y = 3x^2 - 7$? {template}"  # shares only the template
    plain = NgramIndex(items, n=10)
    assert len(plain.lookup(tokenize_many([row])).row) > 0
    idx = NgramIndex(items, n=10, reference=reference, reference_df=5)
    assert len(idx.lookup(tokenize_many([row])).row) == 0
    assert len(idx.lookup(tokenize_many([items[0]])).row) > 0  # the item itself still matches
    assert len(NgramIndex(items, n=10, reference=reference[:4]).lookup(tokenize_many([row])).row)
    # the stage: the bundled list knows this template; a file of problems works too
    bench = tmp_path / "curves.jsonl"
    bench.write_text(json.dumps({"problem": items[0], "answer": "C"}) + "\n")
    ref = tmp_path / "reference.jsonl"
    ref.write_text("".join(json.dumps({"problem": r}) + "\n" for r in reference))
    rows = problems_frame([(row, None), (items[0], None)])

    def flagged(**options: object) -> list[int]:
        stage = Decontaminate(str(bench), mode="annotate", answer_aware=False, **options)  # type: ignore[arg-type]
        return stage.apply(rows.lazy(), _ctx()).collect()["contamination"].list.len().to_list()

    assert flagged(reference=None) == [1, 1]
    assert flagged() == [0, 1]
    assert flagged(reference=str(ref)) == [0, 1]
    assert "reference_version" in Decontaminate(reference=str(ref)).describe()
    with pytest.raises(curate.ConfigError, match="reference"):
        Decontaminate(reference=str(tmp_path / "nope.jsonl"))


def test_rows_with_other_numbers_are_siblings(tmp_path: Path) -> None:
    item = (
        "How many ways are there to put 5 balls in 2 boxes if the balls are distinguishable "
        "but the boxes are not?"
    )
    bench = tmp_path / "balls.jsonl"
    bench.write_text(json.dumps({"problem": item, "answer": "16"}) + "\n")
    rows = problems_frame(
        [
            (item.replace("2 boxes", "3 boxes"), None),  # other numbers: a sibling
            ("Problem 7. " + item + " (5 points)", None),  # adds numbers only: a copy
            (item.replace("5 balls", "the balls"), None),  # lacks one only: a partial copy
        ]
    )
    stage = Decontaminate(str(bench), mode="annotate", answer_aware=False)
    out = stage.apply(rows.lazy(), _ctx()).collect()
    assert out["contamination"].list.len().to_list() == [0, 1, 1]
    blind = Decontaminate(str(bench), mode="annotate", answer_aware=False, number_aware=False)
    hits = blind.apply(rows.lazy(), _ctx()).collect()["contamination"]
    assert [h[0]["same_numbers"] for h in hits] == [False, True, True]


def _ctx() -> curate.StageContext:
    d = tmp()
    return curate.StageContext(run_dir=d, cache_dir=d / "cache", stage_name="decontaminate")
