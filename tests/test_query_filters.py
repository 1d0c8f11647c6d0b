"""DeepDistill's query filters: QueryFilter (unicode ratio, empty, incomplete, URL, table)
and RepeatedNgrams (n-grams repeated across the table, counted in a global step)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
from _factories import problems_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import curate
from curate.errors import ConfigError
from curate.query_filters import (
    NGRAM_COUNT,
    UNICODE_RATIO,
    QueryFilter,
    RepeatedNgrams,
    find_table,
    find_url,
    incomplete,
    ngram_hashes,
    unicode_ratio,
    without_instructions,
)
from curate.run import apply_stage

FINE = [
    "What is $1+1$?",
    r"Let $x = \frac{1}{2}$. Compute $x^2 + \left\{ 1 \right\}$.",
    "It costs $5 more than a pen, and the total is $2,366, how much is the pen?",
    "Socks cost $4 per pair. How many pairs can I buy with $50?",
    "Find the next term of 1, 2, 4, 8, ...",
    "Solve for x in terms of a",
    r"Find $|x| + |y|$ if $|x - 1| = 2$ and $|y| = 3$.",
    "Let $f(x) = x^2$. What is $f(3)$? The answer is one of (A) 9 (B) 6.",
    "Find the area of triangle ABC where A.B = 3.",
    r"Compute \[ \sum_{k=1}^{10} k \] and \( 2^{10} \).",
    r"Evaluate \begin{array}{cc} 1 & 2 \\ 3 & 4 \end{array} as a determinant.",
    "Find x if x ≤ 2π and x ≥ 0°.",
]

BAD = [
    (None, "empty_query"),
    ("", "empty_query"),
    ("  $$ ?", "empty_query"),
    ("计算：一个长方形的长是5厘米，宽是3厘米，它的面积是多少平方厘米？", "high_unicode_ratio"),
    ("Find the value of", "incomplete_query"),
    ("Solve $x^2 + 2x", "incomplete_query"),
    (r"Compute \( x^2", "incomplete_query"),
    (r"Find $\frac{1}{2$.", "incomplete_query"),
    ("Let n be the number of ...", "incomplete_query"),
    ("Answer the following questions:", "incomplete_query"),
    ("See https://artofproblemsolving.com/x for the figure. Find x.", "url_in_query"),
    ("Visit www.example.org and find x.", "url_in_query"),
    ("Given the data:\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\nFind y at 3.", "table_in_query"),
    (r"Given \begin{tabular}{cc} 1 & 2 \end{tabular} find the sum.", "table_in_query"),
    ("Given <table><tr><td>1</td></tr></table> find the sum.", "table_in_query"),
]


def test_fine_queries_are_kept_and_bad_ones_rejected_with_their_reason() -> None:
    rows = problems_frame([(p, "1") for p in FINE] + [(p or "", "1") for p, _ in BAD])
    rows = rows.with_columns(  # a null problem too
        pl.when(pl.int_range(pl.len()) == len(FINE))
        .then(None)
        .otherwise("problem")
        .alias("problem")
    )
    kept, rejects = apply_stage(QueryFilter(), rows)
    assert kept["problem"].to_list() == FINE
    assert rejects["reason"].to_list() == [reason for _, reason in BAD]
    assert rejects["detail"].null_count() == 0
    assert kept.height + rejects.height == rows.height
    assert UNICODE_RATIO in kept.columns


def test_details_say_what_was_found() -> None:
    rows = problems_frame(
        [
            ("See https://a.org/p.png now. Find x.", "1"),
            ("Solve $x^2 + 2x", "1"),
            ("Find the value of", "1"),
            ("αβγδ εζηθ x", "1"),
        ]
    )
    _, rejects = apply_stage(QueryFilter(), rows)
    assert rejects["detail"].to_list() == [
        "https://a.org/p.png",
        "unclosed $...$ formula",
        "ends mid-sentence: 'of'",
        "0.889 of the characters are not ASCII > 0.3",
    ]


def test_checks_can_be_turned_off_and_cjk_allowed() -> None:
    rows = problems_frame([(p or "", "1") for p, _ in BAD[3:]])
    stage = QueryFilter(cjk=True, incomplete=False, urls=False, tables=False)
    kept, rejects = apply_stage(stage, rows)
    assert rejects.height == 0 and kept.height == rows.height
    kept, _ = apply_stage(QueryFilter(max_unicode_ratio=None), problems_frame([("αβγ?", "1")]))
    assert kept.height == 1 and kept[UNICODE_RATIO].to_list() == [0.75]


def test_helpers() -> None:
    assert unicode_ratio("ab") == 0.0 and unicode_ratio("  ") == 0.0
    assert incomplete(r"Price is $\$5$. What is $x$?") is None
    assert incomplete("Find x, y and z such that x+y+z=3.") is None
    assert incomplete("We have {1, 2} and {3}") is None
    assert incomplete("Count the sets {1, 2") == "unbalanced braces: 1 '{' and 0 '}'"
    assert incomplete("Compute the sum of the following,") == "ends with ','"
    assert find_url("ftp://x.org/a") == "ftp://x.org/a" and find_url("e.g. f.g") is None
    assert find_table(r"\begin{table} x \end{table}") == "tabular"
    assert find_table("a | b\nc | d") is None  # pipes without a separator row
    with pytest.raises(ConfigError, match="max_unicode_ratio"):
        QueryFilter(max_unicode_ratio=-0.1)


TEMPLATE = "Suppose that a fair coin is tossed repeatedly and independently until it shows heads"


def pool(n_template: int) -> list[tuple[str, str | None]]:
    rows = [
        (f"{TEMPLATE} {i} times in a row; find the expected number {i}.", "1")
        for i in range(n_template)
    ]
    rows += [(f"What is {i} + {i}?", "1") for i in range(5)]
    rows += [(rows[0][0], "1")] * 3  # exact copies of a templated problem: counted once
    return rows


def test_repeated_ngrams_reject_rows_with_an_ngram_in_more_than_max_count_texts() -> None:
    stage = RepeatedNgrams(n=10, max_count=20)
    kept, rejects = apply_stage(stage, problems_frame(pool(20)))
    assert rejects.height == 0  # 20 texts: not more than 20
    assert kept[NGRAM_COUNT].max() == 20
    kept, rejects = apply_stage(stage, problems_frame(pool(21)))
    assert rejects.height == 24 and set(rejects["reason"]) == {"repeated_ngram"}
    assert rejects["detail"][0] == "a 10-gram occurs in 21 texts (> 20)"
    assert kept["problem"].to_list() == [f"What is {i} + {i}?" for i in range(5)]
    assert kept[NGRAM_COUNT].to_list() == [0] * 5  # fewer than 10 tokens: no 10-gram


def test_repeated_ngrams_count_occurrences_on_request() -> None:
    text = " ".join(["one two three"] * 4)  # "one two three one" four times over
    rows = problems_frame([(text, "1"), ("a b c d e", "1")])
    kept, rejects = apply_stage(RepeatedNgrams(n=3, max_count=3, count="occurrences"), rows)
    assert rejects["id"].to_list() == [rows["id"][0]] and kept.height == 1
    kept, rejects = apply_stage(RepeatedNgrams(n=3, max_count=3), rows)
    assert rejects.height == 0  # one text


def test_answer_format_instructions_and_ignored_phrases_are_not_counted() -> None:
    suffix = " Let's think step by step and output the final answer within \\boxed{}."
    rows = problems_frame([(f"What is {i} plus {i + 1}?{suffix}", "1") for i in range(6)])
    kept, _ = apply_stage(RepeatedNgrams(n=8, max_count=2), rows)
    assert kept.height == 6
    kept, rejects = apply_stage(RepeatedNgrams(n=8, max_count=2, skip_instructions=False), rows)
    assert kept.height == 0 and rejects.height == 6
    phrase = "请一步一步地思考并把最终答案写在方框里"
    rows = problems_frame([(f"计算 {i} 加 {i}。{phrase}", "1") for i in range(4)])
    _, rejects = apply_stage(RepeatedNgrams(n=5, max_count=2, skip_instructions=False), rows)
    assert rejects.height == 4
    kept, _ = apply_stage(RepeatedNgrams(n=5, max_count=2, ignore=(phrase,)), rows)
    assert kept.height == 4
    assert without_instructions("Find x. Put your final answer in a box.") == "Find x."
    assert without_instructions("Put 3 in the final answer box.") != ""  # has a number


def test_ngram_hashes_are_stable_and_normalized() -> None:
    a, b = ngram_hashes([r"Find $\dfrac{1}{2}$ of  x now", r"find \frac{1}{2} of x now"], 3)
    assert a.tolist() == b.tolist() and len(a) == 5
    again = ngram_hashes([r"find \frac{1}{2} of x now"], 3)[0]
    assert again.tolist() == b.tolist()
    with pytest.raises(ConfigError):
        RepeatedNgrams(n=0)


@dataclass(frozen=True)
class SmallBatches(RepeatedNgrams):
    batch_rows: ClassVar[int] = 4  # the counts must come from the global step, not a batch


def test_a_run_counts_across_batches_and_conserves_rows(tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    rows = [*pool(21), ("See http://x.org to find x.", "2")]
    path.write_text("".join(json.dumps({"problem": p, "answer": a}) + "\n" for p, a in rows))
    source = curate.read(path, source="pool")
    stages = [QueryFilter(), SmallBatches(n=10)]
    run = curate.Recipe("q", [source], stages).run(tmp_path / "run", progress=False)
    kept = run.sql("SELECT problem FROM problems")["problem"].to_list()
    assert kept == [f"What is {i} + {i}?" for i in range(5)]
    rejects = run.sql("SELECT stage, reason, count(*) AS n FROM rejects GROUP BY 1, 2 ORDER BY 1")
    assert rejects.rows() == [
        ("query_filter", "url_in_query", 1),
        ("small_batches", "repeated_ngram", 24),
    ]
    stats = run.manifest["stages"][2]["stats"]
    assert stats["repeated_ngrams"] > 0 and stats["ngrams"] > stats["repeated_ngrams"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.text(max_size=60) | st.sampled_from(FINE + [b or "" for b, _ in BAD])))
def test_rows_are_conserved_on_any_text(texts: list[str]) -> None:
    rows = problems_frame([(t, "1") for t in texts])
    for stage in (QueryFilter(), RepeatedNgrams(n=2, max_count=1)):
        kept, rejects = apply_stage(stage, rows)
        assert set(kept["id"]).isdisjoint(rejects["id"])
        assert kept.height + rejects.height == rows.height
        assert rejects["reason"].null_count() == 0
