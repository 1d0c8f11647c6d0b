#!/usr/bin/env python3
"""Regenerate the bundled demo pool in data/demo/ from the shared public data.

The demo pool is a small, deterministic subset of five real public math data
sets, each kept in its ORIGINAL file format with its original field names and
values, so that ``make demo`` exercises every reader (JSONL, JSON array,
nested verl parquet) offline.  It also holds ``math_texts.jsonl``, 160 real
math Q&A texts (math.stackexchange.com, mathoverflow.net; CC BY-SA 4.0) with
four of the source's fields and ``text`` cut to 1,000 characters, as source
texts for problem synthesis, and ``web_pages.jsonl``, 330 real web pages with
URLs (240 general pages from C4-en and a 2019 Common Crawl WARC extract, 90
math-adjacent physics / cstheory / proofassistants Stack Exchange pages) with
``text`` cut to 1,500 characters and a ``kind`` label by origin, as negatives
for a math-page classifier and a mining loop.

Usage (from the repository root)::

    python data/demo/make_demo.py                      # reads ../shared/data
    python data/demo/make_demo.py --shared /path/to/shared/data
    python data/demo/make_demo.py --check              # rebuild in a temp dir, compare sha256

Only the standard library and pyarrow are used.  JSONL rows are copied as the
original line bytes; parquet subsets are ``Table.take(indices)`` on the
original table (schema and schema metadata unchanged) written with zstd; the
AIME JSON array and the math_texts and web_pages records are re-serialised with
``json.dumps(ensure_ascii=False)``.
Output is byte-for-byte reproducible for a given pyarrow version (the parquet
footer records the writer version).

The script also writes SOURCES.md (provenance, sizes, sha256) and LICENSES.md.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"

# Inputs, with the sha256 recorded in shared/data/SOURCES.md.  The build
# refuses to run on different bytes (use --allow-changed-inputs to override),
# because the bundle would then no longer match the provenance written below.
INPUTS = {
    "math": ("hendrycks_math/train.jsonl",
             "00aa30008a611172529ab775ed6f3af9efd32974625b19181c3ebfc724134e52"),
    "gsm8k": ("grade_school_math/train.jsonl",
              "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465"),
    "dapo": ("svs_dapo/dapo_math_17k.parquet",
             "246ae23df97c9eae8126cb4da780e9a0a31d10110e16eed144bcecbf2132d535"),
    "aime": ("rllm/train/aime.json",
             "78f1b9bae6d00794b43e79a5842917f7ef4e355d9b705743c61f255f3c7c5d49"),
    "deepscaler": ("deepscaler_partial/deepscaler_train.parquet",
                   "f60e89acc6b9ee897c414d1d517f6427f60b054a6898b70b7cbbcc3800e0b2de"),
    # shared/data/SOURCES.md lists no sha256 for web_corpus/ files; this one was
    # computed from the shared file (650 lines, 2,439,379 bytes).
    "texts": ("web_corpus/math_stackexchange_mathoverflow.jsonl",
              "39fb80c2209bfdccedde0d6b62e0858b668d0cd1cc2cad2b92648401669ed438"),
    # web_pages.jsonl; sha256 computed from the shared files, as for "texts"
    # (500 lines, 1,281,859 bytes; 335 lines, 1,644,791 bytes; 314 lines, 1,219,069 bytes).
    "web_c4": ("web_corpus/nonmath_c4_olmo.jsonl",
               "c6b5960efb25728162eaf9e102600349fe3e0c0c30ce8a685ee0637ce5a1225b"),
    "web_ccwarc": ("web_corpus/nonmath_ccwarc2019_dolma.jsonl",
                   "4333ba060ab606727d2968b9d49475ccfd816f6d2206f3e9348309644da77864"),
    "web_se": ("web_corpus/mathadjacent_physics_cstheory_proofassistants_se.jsonl",
               "0b9903a486dc1dbba0d68a9127f0974d847ba77017785679e4d91042cbafb79b"),
}

OUT_NAMES = {
    "math": "math_train.jsonl",
    "gsm8k": "gsm8k_train.jsonl",
    "dapo": "dapo_math_17k.parquet",
    "aime": "aime_1983_2023.json",
    "deepscaler": "deepscaler_sample.parquet",
    "texts": "math_texts.jsonl",
    "web": "web_pages.jsonl",
}

MATH_STEP = 5            # rows 0, 5, 10, ... -> 1,500 rows
GSM8K_N = 1000           # first 1,000 rows
AIME_STEP, AIME_N = 3, 300   # rows 0, 3, 6, ... first 300 of those
DAPO_N = 1500            # total rows
DAPO_MIN_DUP_GROUPS = 40  # all conflicting-answer groups + earliest others up to this
DEEPSCALER_N = 600
DEEPSCALER_SUFFIX = (" Let's think step by step and output the final answer "
                     "within \\boxed{}.")
PARQUET_COMPRESSION = "zstd"
TEXTS_STEP, TEXTS_N = 4, 160   # records 0, 4, 8, ... first 160 of those
TEXTS_FIELDS = ("id", "url", "title", "text")
TEXT_MAX_CHARS = 1000    # JiuZhang3.0 cuts source texts to their first 1,000 characters
# web_pages.jsonl groups, in output order: (group, input key, host or None for the
# whole file, kind, step, n).  Records 0, step, 2*step, ... of the group (in the
# order of the shared file), first n of those; step = (records in group) // n, so
# the picks spread over the whole group.
WEB_GROUPS = (
    ("c4", "web_c4", None, "general", 2, 200),
    ("ccwarc", "web_ccwarc", None, "general", 8, 40),
    ("physics", "web_se", "physics.stackexchange.com", "math_adjacent", 4, 30),
    ("cstheory", "web_se", "cstheory.stackexchange.com", "math_adjacent", 3, 30),
    ("proofassistants", "web_se", "proofassistants.stackexchange.com", "math_adjacent", 2, 30),
)
WEB_FIELDS = ("id", "url", "domain", "text", "kind")
WEB_MAX_CHARS = 1500


# --------------------------------------------------------------------------
# helpers

def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(p: Path) -> str:
    return sha256_bytes(p.read_bytes())


def ws(s: str) -> str:
    """Collapse all whitespace runs to one space and strip."""
    return " ".join(s.split())


def jsonl_lines(raw: bytes) -> list[bytes]:
    """Original line bytes (without the trailing newline), blank lines dropped."""
    return [ln for ln in raw.split(b"\n") if ln.strip()]


def write_parquet_subset(table: pa.Table, indices: list[int], out: Path) -> pa.Table:
    sub = table.take(pa.array(indices, type=pa.int64()))
    # take() keeps the schema, including the huggingface / pandas metadata.
    assert sub.schema.equals(table.schema, check_metadata=True)
    pq.write_table(sub, out, compression=PARQUET_COMPRESSION)
    return sub


def first_content(row: dict) -> str:
    return row["prompt"][0]["content"]


def cut_chars(s: str, n: int) -> str:
    """The first n characters (code points) of s, never ending inside a surrogate pair.

    A str from json.loads holds a paired \\ud83d\\ude00 escape as one code point,
    so this only matters for unpaired escapes; a high surrogate whose low half
    would be cut off is dropped too."""
    t = s[:n]
    if t and "\ud800" <= t[-1] <= "\udbff" and s[n:n + 1] and "\udc00" <= s[n] <= "\udfff":
        t = t[:-1]
    return t


# --------------------------------------------------------------------------
# builders; each returns a dict of facts used in SOURCES.md

def build_math(src: Path, out: Path) -> dict:
    lines = jsonl_lines(src.read_bytes())
    picked = lines[::MATH_STEP]
    out.write_bytes(b"".join(ln + b"\n" for ln in picked))
    recs = [json.loads(ln) for ln in picked]
    return {
        "rows": len(picked),
        "records": recs,
        "all_records": [json.loads(ln) for ln in lines],
        "subset": (f"every {MATH_STEP}th line of the original file "
                   f"(lines 0, {MATH_STEP}, {2 * MATH_STEP}, ...; "
                   f"{len(lines)} -> {len(picked)}), original line bytes unchanged"),
    }


def build_gsm8k(src: Path, out: Path) -> dict:
    lines = jsonl_lines(src.read_bytes())
    picked = lines[:GSM8K_N]
    out.write_bytes(b"".join(ln + b"\n" for ln in picked))
    return {
        "rows": len(picked),
        "records": [json.loads(ln) for ln in picked],
        "all_records": [json.loads(ln) for ln in lines],
        "subset": f"first {GSM8K_N} lines of the original file, original line bytes unchanged",
    }


def build_aime(src: Path, out: Path) -> dict:
    rows = json.loads(src.read_text(encoding="utf-8"))
    picked = rows[::AIME_STEP][:AIME_N]
    # Original is an indented array without a trailing newline; the demo copy
    # is compact (indent=None) with the same objects, key order and values.
    out.write_text(json.dumps(picked, ensure_ascii=False), encoding="utf-8")
    return {
        "rows": len(picked),
        "records": picked,
        "all_records": rows,
        "subset": (f"every {AIME_STEP}rd element of the array (elements 0, 3, 6, ..., "
                   f"{AIME_STEP * (AIME_N - 1)}; first {AIME_N} of them), all fields kept; "
                   "re-serialised as compact JSON (json.dumps, indent=None, "
                   "ensure_ascii=False; the original is indented with 2 spaces)"),
    }


def build_texts(src: Path, out: Path) -> dict:
    rows = [json.loads(ln) for ln in jsonl_lines(src.read_bytes())]
    picked = rows[::TEXTS_STEP][:TEXTS_N]
    recs = []
    for r in picked:
        title = r["text"].split("\n", 1)[0]
        recs.append({"id": r["id"], "url": r["url"], "title": title,
                     "text": cut_chars(r["text"], TEXT_MAX_CHARS)})
    assert all(tuple(r) == TEXTS_FIELDS for r in recs)
    out.write_bytes(b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8")
                             for r in recs))
    n_cut = sum(len(r["text"]) > TEXT_MAX_CHARS for r in picked)
    n_title = sum(rec["title"] == r.get("title") for rec, r in zip(recs, picked, strict=True))
    domains = collections.Counter(r["domain"] for r in picked)
    all_domains = collections.Counter(r["domain"] for r in rows)
    return {
        "rows": len(recs),
        "records": recs,
        "all_records": rows,
        "n_cut": n_cut,
        "subset": (f"every {TEXTS_STEP}th record of the shared file (records 0, "
                   f"{TEXTS_STEP}, {2 * TEXTS_STEP}, ..., {TEXTS_STEP * (TEXTS_N - 1)}; "
                   f"first {TEXTS_N} of them; {len(rows)} -> {len(recs)}), original order: "
                   + ", ".join(f"{v} {k}" for k, v in sorted(domains.items()))
                   + " (the shared file: "
                   + ", ".join(f"{v} {k}" for k, v in sorted(all_domains.items())) + ")"),
        "notes": [
            (f"Changes made: only the fields {', '.join(f'`{k}`' for k in TEXTS_FIELDS)} are "
             "kept (`domain`, `question_chars`, `question_score`, `answer_score`, `pool`, "
             "`source_dataset`, `url_note` dropped); `title` is the first line of the "
             f"record's full `text` (the question title; equal to the source's own `title` "
             f"field in {n_title} of {len(recs)}); `text` is CUT to its first "
             f"{TEXT_MAX_CHARS:,} characters (Python str code points, never splitting a "
             f"surrogate pair), as JiuZhang3.0 cuts its source texts; {n_cut} of the "
             f"{len(recs)} texts were longer and are cut (usually mid-sentence; the top "
             "answer is then partly or wholly missing); records re-serialised with "
             "json.dumps(ensure_ascii=False), one per line (non-ASCII as raw UTF-8)."),
            ("`url` was rebuilt from the Stack Exchange post id when the shared file was "
             "made (`https://math.stackexchange.com/questions/<id>`, "
             "`https://mathoverflow.net/questions/<id>`), not checked against the live "
             "site; it is the attribution link for CC BY-SA."),
        ],
    }


def ordinal(n: int) -> str:
    """2 -> '2nd', 3 -> '3rd', 8 -> '8th', 11 -> '11th'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def url_host(url: str) -> str:
    """The URL's host, lower-cased, without a leading ``www.``."""
    return (urlsplit(url).hostname or "").removeprefix("www.")


def build_web(srcs: dict[str, Path], out: Path) -> dict:
    files = {k: [json.loads(ln) for ln in jsonl_lines(p.read_bytes())] for k, p in srcs.items()}
    no_url = {k: sum(not r.get("url") for r in rows) for k, rows in files.items()}
    recs: list[dict] = []
    all_recs: list[dict] = []
    groups: list[dict] = []
    for group, key, host, kind, step, n in WEB_GROUPS:
        # (index in the shared file, record) of the group; records without a url skipped
        rows = [(i, r) for i, r in enumerate(files[key])
                if r.get("url") and (host is None or url_host(r["url"]) == host)]
        picked = rows[::step][:n]
        if len(picked) != n or len(rows) // n != step:
            raise SystemExit(f"web {group}: {len(rows)} records, step {step}, "
                             f"{len(picked)} picked, want {n}")
        for i, r in picked:
            recs.append({"id": r.get("id") or f"{group}-{i}", "url": r["url"],
                         "domain": url_host(r["url"]),
                         "text": cut_chars(r["text"], WEB_MAX_CHARS), "kind": kind})
        all_recs += [{**r, "kind": kind} for _, r in rows]
        groups.append({
            "group": group, "key": key, "kind": kind, "step": step, "n": len(picked),
            "of": len(rows), "last": step * (n - 1),
            "n_cut": sum(len(r["text"]) > WEB_MAX_CHARS for _, r in picked),
            "n_id": sum(bool(r.get("id")) for _, r in picked),
            "n_domain": sum(r.get("domain", "").removeprefix("www.") == url_host(r["url"])
                            for _, r in picked),
        })
    assert all(tuple(r) == WEB_FIELDS for r in recs)
    assert len({r["id"] for r in recs}) == len(recs), "web: duplicate ids"
    assert all(r["domain"] for r in recs), "web: url without host"
    out.write_bytes(b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8")
                             for r in recs))
    kinds = collections.Counter(r["kind"] for r in recs)
    n_cut = sum(g["n_cut"] for g in groups)
    n_id = sum(g["n_id"] for g in groups)
    n_domain = sum(g["n_domain"] for g in groups)
    return {
        "rows": len(recs),
        "records": recs,
        "all_records": all_recs,
        "groups": groups,
        "n_cut": n_cut,
        "subset": (
            "five groups, in this order, each in the order of its shared file; within "
            "each group records 0, k, 2k, ... (k = records in the group // wanted, "
            "rounded down, so the picks spread over the whole group), the first N of "
            "those: "
            + "; ".join(f"{g['group']} ({g['kind']}): every {ordinal(g['step'])} of {g['of']} "
                        f"(records 0, {g['step']}, ..., {g['last']}) -> {g['n']}"
                        for g in groups)
            + " = " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
            + "; the physics / cstheory / proofassistants groups are told apart by the "
            "url's host; records without a url are skipped ("
            + ", ".join(f"{INPUTS[k][0].rsplit('/', 1)[1]}: {v}" for k, v in no_url.items())
            + ")"),
        "notes": [
            (f"Changes made: only the fields {', '.join(f'`{k}`' for k in WEB_FIELDS)} "
             "are kept (the sources' `date`, `pool`, `source_dataset`, `note`, "
             "`attributes`, `title`, `question_chars`, `question_score`, `answer_score`, "
             f"`url_note` dropped); `id` is the source's `id` ({n_id} of {len(recs)}; "
             "otherwise `<group>-<index in the shared file>`); `domain` is the url's host, "
             "lower-cased, without a leading `www.` (equal to the source's `domain` "
             f"without `www.` in {n_domain} of {len(recs)}); `kind` is added: `general` "
             "for the C4 and Common Crawl pages, `math_adjacent` for the Stack Exchange "
             "pages (by origin, not labelled by hand; random web pages can contain a few "
             f"math pages); `text` is CUT to its first {WEB_MAX_CHARS:,} characters "
             f"(Python str code points, never splitting a surrogate pair); {n_cut} of the "
             f"{len(recs)} texts were longer and are cut ("
             + ", ".join(f"{g['group']} {g['n_cut']}" for g in groups)
             + "); records re-serialised with json.dumps(ensure_ascii=False), one per "
             "line (non-ASCII as raw UTF-8)."),
            ("The Common Crawl WARC pages (group ccwarc) are NOT filtered: raw text "
             "extracted from HTML, many non-English pages (Wikipedia in many languages, "
             "non-Latin scripts) and boilerplate (navigation menus, account pages; "
             "the shortest text here has "
             f"{min(len(r['text']) for r in recs if r['id'].startswith('dolma-ccwarc-'))} "
             "characters), and a few pages from Stack Exchange sites; they are kept as "
             "realistic negatives. The Stack Exchange `url`s were rebuilt from the post id "
             "when the shared file was made "
             "(`https://<site>.stackexchange.com/questions/<id>`), not checked against "
             "the live site; they are the attribution links for CC BY-SA."),
        ],
    }


def select_dapo(rows: list[dict]) -> tuple[list[int], dict]:
    groups: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(rows):
        groups[first_content(r)].append(i)
    dup = [g for g in groups.values() if len(g) > 1]
    dup.sort(key=lambda g: g[0])
    gt = [r["reward_model"]["ground_truth"] for r in rows]
    conflicting = [g for g in dup if len({gt[i] for i in g}) > 1]
    others = [g for g in dup if len({gt[i] for i in g}) == 1]
    n_other = max(0, DAPO_MIN_DUP_GROUPS - len(conflicting))
    chosen_groups = conflicting + others[:n_other]
    chosen = {i for g in chosen_groups for i in g}
    if len(chosen) > DAPO_N:
        raise SystemExit("dapo: duplicate groups alone exceed the row budget")
    n_groups_rows = len(chosen)
    for i in range(len(rows)):  # fill with the first other rows by position
        if len(chosen) >= DAPO_N:
            break
        chosen.add(i)
    idx = sorted(chosen)
    return idx, {
        "all_dup_groups": len(dup),
        "all_conflicting_groups": len(conflicting),
        "seeded_groups": len(chosen_groups),
        "seeded_conflicting": len(conflicting),
        "seeded_group_rows": n_groups_rows,
        "fill_rows": len(idx) - n_groups_rows,
    }


def group_stats(texts: list[str], answers: list[str]) -> dict:
    exact: dict[str, list[int]] = collections.defaultdict(list)
    loose: dict[str, list[int]] = collections.defaultdict(list)
    for i, t in enumerate(texts):
        exact[t].append(i)
        loose[ws(t)].append(i)
    ex = [g for g in exact.values() if len(g) > 1]
    lo = [g for g in loose.values() if len(g) > 1]
    return {
        "exact_groups": len(ex),
        "exact_rows": sum(len(g) for g in ex),
        "exact_extra_rows": sum(len(g) - 1 for g in ex),
        "exact_conflicting": sum(len({answers[i] for i in g}) > 1 for g in ex),
        "ws_groups": len(lo),
        "ws_extra_rows": sum(len(g) - 1 for g in lo),
        "ws_conflicting": sum(len({answers[i] for i in g}) > 1 for g in lo),
        "group_sizes": dict(sorted(collections.Counter(len(g) for g in ex).items())),
    }


def build_dapo(src: Path, out: Path) -> dict:
    table = pq.read_table(src)
    rows = table.to_pylist()
    idx, sel = select_dapo(rows)
    sub = write_parquet_subset(table, idx, out)
    srows = sub.to_pylist()
    st = group_stats([first_content(r) for r in srows],
                     [r["reward_model"]["ground_truth"] for r in srows])
    return {
        "rows": sub.num_rows,
        "records": srows,
        "all_records": rows,
        "indices": idx,
        "selection": sel,
        "stats": st,
        "subset": (
            f"{sub.num_rows} of {table.num_rows} rows, original order: every row of "
            f"{sel['seeded_groups']} duplicate groups (rows whose prompt[0].content is "
            f"byte-identical) = all {sel['seeded_conflicting']} groups whose copies have "
            f"conflicting reward_model.ground_truth + the "
            f"{sel['seeded_groups'] - sel['seeded_conflicting']} other groups that occur "
            f"first in the file ({sel['seeded_group_rows']} rows), then the first "
            f"{sel['fill_rows']} remaining rows by position; Table.take(sorted indices), "
            f"schema and metadata unchanged, written with pyarrow {pa.__version__} "
            f"(compression={PARQUET_COMPRESSION})"),
    }


def build_deepscaler(src: Path, out: Path, math_recs: list[dict],
                     aime_recs: list[dict]) -> dict:
    table = pq.read_table(src)
    rows = table.to_pylist()
    probs = [first_content(r).removesuffix(DEEPSCALER_SUFFIX) for r in rows]
    pools = {
        "aime": ({r["problem"] for r in aime_recs}, {ws(r["problem"]) for r in aime_recs}),
        "math": ({r["problem"] for r in math_recs}, {ws(r["problem"]) for r in math_recs}),
    }
    hits: dict[int, tuple[str, str]] = {}
    for i, p in enumerate(probs):
        for name, (exact, loose) in pools.items():
            if p in exact:
                hits[i] = (name, "exact")
                break
            if ws(p) in loose:
                hits[i] = (name, "whitespace")
                break
    chosen = set(list(sorted(hits))[:DEEPSCALER_N])
    n_overlap = len(chosen)
    for i in range(len(rows)):
        if len(chosen) >= DEEPSCALER_N:
            break
        chosen.add(i)
    idx = sorted(chosen)
    sub = write_parquet_subset(table, idx, out)
    counts = collections.Counter(hits[i] for i in idx if i in hits)
    srows = sub.to_pylist()
    st = group_stats([first_content(r) for r in srows],
                     [r["reward_model"]["ground_truth"] for r in srows])
    return {
        "rows": sub.num_rows,
        "records": srows,
        "all_records": rows,
        "indices": idx,
        "overlap": n_overlap,
        "overlap_by": {f"{k[0]}/{k[1]}": v for k, v in sorted(counts.items())},
        "stats": st,
        "subset": (
            f"{sub.num_rows} of {table.num_rows} rows, original order: all "
            f"{n_overlap} rows whose problem (prompt[0].content minus the suffix "
            f"\"{DEEPSCALER_SUFFIX.strip()}\") also occurs, exactly or after collapsing "
            f"whitespace, in the bundled aime_1983_2023.json or math_train.jsonl, then the "
            f"first {sub.num_rows - n_overlap} other rows by position; "
            f"Table.take(sorted indices), schema and metadata unchanged, written with "
            f"pyarrow {pa.__version__} (compression={PARQUET_COMPRESSION})"),
    }


# --------------------------------------------------------------------------
# provenance and licenses

META = {
    "math": {
        "what": ("MATH (Hendrycks et al. 2021) train split: competition problems with "
                 "step-by-step solutions; the final answer is only inside "
                 "\\boxed{...} in `solution`"),
        "format": "JSONL, one object per line: `problem`, `level`, `type`, `solution`, `unique_id`",
        "repo": "aiwaves-cn/agents",
        "path": "src/agents/datasets/data/math/train/<subject>/<n>.json",
        "path_note": ("7,500 single-problem JSON files (original MATH release layout), "
                      "concatenated into shared `hendrycks_math/train.jsonl` in subject, "
                      "then number order; each object is unchanged except for the added "
                      "`unique_id` = path relative to the MATH root, e.g. "
                      "\"train/algebra/1.json\" (the prm800k id scheme)"),
        "commit": "e8c4e3c2d19739d3dff59e577d1c97090cc15f59",
        "license": "Apache-2.0 (aiwaves-cn/agents LICENSE); the MATH dataset itself is MIT "
                   "(hendrycks/math, Copyright (c) 2021 Dan Hendrycks)",
    },
    "gsm8k": {
        "what": "GSM8K train split: grade-school word problems; the final answer "
                "follows `#### ` on the last line of `answer`, which also carries "
                "`<<a*b=c>>` calculator annotations",
        "format": "JSONL, one object per line: `question`, `answer`",
        "repo": "openai/grade-school-math",
        "path": "grade_school_math/data/train.jsonl",
        "commit": "3101c7d5072418e28b9008a6636bde82a006892c",
        "license": "MIT (OpenAI)",
    },
    "dapo": {
        "what": "DAPO-Math-17k in verl parquet format (one row per unique upstream "
                "prompt; bare problem text; integer answers)",
        "format": ("Parquet: `data_source` string, `prompt` list<struct<content, role>>, "
                   "`ability` string, `reward_model` struct<ground_truth, style>, "
                   "`extra_info` struct<answer, index: int64, split>"),
        "repo": "MasterVito/SvS",
        "path": "data/dapo_math_17k.parquet",
        "commit": "9fd8f35375b31b8632b52e715296c264a3ad4176",
        "license": "Apache-2.0 (repo LICENSE); the upstream dataset "
                   "BytedTsinghua-SIA/DAPO-Math-17k is Apache-2.0",
    },
    "aime": {
        "what": "AIME 1983-2023 problems with AoPS solutions (the AIME component of the "
                "DeepScaleR training mix)",
        "format": ("JSON array of objects: `problem`, `solution`, `answer` (string), "
                   "`year`, `aime_number`, `problem_number` (int), `difficulty` (float)"),
        "repo": "agentica-project/rllm",
        "path": "rllm/data/train/math/aime.json",
        "commit": "874daa4acb7f451dc2a4b2b6e8ce28f5aa88d1f5",
        "license": "MIT (Copyright (c) 2025 agentica-project)",
    },
    "deepscaler": {
        "what": ("DeepScaleR sample in verl parquet format: a 2,000-row subset of "
                 "agentica-org DeepScaleR-Preview-Dataset with problem_id, a difficulty "
                 "score and per-problem NLL from that project (NOT the full 40K set)"),
        "format": ("Parquet written from pandas: `data_source`, `problem_id` int64, `prompt` "
                   "list<struct<content, role>>, `ability`, `reward_model` "
                   "struct<ground_truth, style>, `extra_info` struct<difficulty: double, "
                   "index: int64, split>, `ground_truth`, `difficulty`, `nll`, "
                   "`average_nll`, `__index_level_0__` (pandas index column)"),
        "repo": "manhitv/model-checkpoint-scoring",
        "path": "data/deepscaler_train.parquet",
        "commit": "cd7aa6f545afc026c08d7e2704c960a615785fd6",
        "license": "Apache-2.0",
    },
    "texts": {
        "what": ("Real math web texts: highly voted math.stackexchange.com and "
                 "mathoverflow.net Q&A pages (title + question + top answer, Markdown with "
                 "LaTeX), as collected by EleutherAI/math-lm; source texts for problem "
                 "synthesis, not problems with answers"),
        "format": "JSONL, one object per line: `id`, `url`, `title`, `text`",
        "repo": "EleutherAI/math-lm (branch `instruct_data`)",
        "path": ("instruct_data/filtered-stack-exchange/math_33votes.jsonl` and "
                 "`instruct_data/filtered-stack-exchange/math_overflow_40votes.jsonl"),
        "path_note": ("together 1,300 records, 988 math.SE + 312 MathOverflow; shared "
                      "`web_corpus/math_stackexchange_mathoverflow.jsonl` holds a random "
                      "half of them, 650, with `id`, `url`, `domain`, `text` and metadata"),
        "commit": "1d749d37185a97c1bef3188d164597e4b6a0e8d0",
        "license": ("CC BY-SA 4.0 (Stack Exchange user contributions on "
                    "math.stackexchange.com and mathoverflow.net; attribution via each "
                    "record's `url`; https://creativecommons.org/licenses/by-sa/4.0/); the "
                    "EleutherAI/math-lm repository is MIT (Copyright (c) 2023 Zhangir "
                    "Azerbayev)"),
        "license_short": "CC BY-SA 4.0",
    },
    "web": {
        "what": ("Real web pages with URLs, for tests of a math-page classifier (fastText) "
                 "and a DeepSeekMath-style mining loop: general web pages (negatives: "
                 "cleaned English C4 pages and unfiltered pages from one 2019 Common Crawl "
                 "WARC) and math-adjacent Stack Exchange Q&A pages (physics, theoretical "
                 "computer science, proof assistants: hard negatives or borderline "
                 "positives). The math positives are `math_texts.jsonl`. `kind` is the "
                 "label by origin, not by hand"),
        "format": ("JSONL, one object per line: `id`, `url`, `domain`, `text`, `kind` "
                   "(`general` | `math_adjacent`)"),
        "sources": [
            {
                "groups": "c4 (`general`)",
                "input": "web_c4",
                "repo": "allenai/OLMo",
                "path": "test_fixtures/c4-sample.00000-of-00001.json.gz",
                "path_note": ("1,000 C4-en documents from the 2019-04 crawl, 996 domains, "
                              "English, already cleaned by C4; the file was deleted in "
                              "the next commit; shared `web_corpus/nonmath_c4_olmo.jsonl` "
                              "holds a random half of them, 500, with `id`, `url`, "
                              "`domain`, `text`, `date` and metadata"),
                "commit": "06c867c36986328ac31e3877faca286dba0925c3",
                "license": ("C4 is ODC-BY 1.0 "
                            "(https://opendatacommons.org/licenses/by/1-0/); use is also "
                            "subject to the Common Crawl terms of use "
                            "(https://commoncrawl.org/terms-of-use) for the crawled "
                            "content; the allenai/OLMo repository is Apache-2.0"),
            },
            {
                "groups": "ccwarc (`general`)",
                "input": "web_ccwarc",
                "repo": "allenai/dolma",
                "path": ("tests/data/formats/gz/"
                         "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"),
                "path_note": ("a test fixture: text extracted from the HTML of one 2019 "
                              "Common Crawl WARC, 670 documents with text (27 with empty "
                              "text dropped when the shared file was made), 518 domains; "
                              "not filtered (about 58% non-English or boilerplate by a "
                              "rough stop-word test, near-duplicates); every document "
                              "matched dolma's Creative-Commons-licence regex, so the "
                              "pages are biased toward CC-licensed sites; shared "
                              "`web_corpus/nonmath_ccwarc2019_dolma.jsonl` holds a random "
                              "half of them, 335"),
                "commit": "937ccc06f6fa4cefba496b2f48cc77418b941345",
                "license": ("Apache-2.0 (allenai/dolma repository, test fixture); the "
                            "crawled content is also subject to the Common Crawl terms "
                            "of use (https://commoncrawl.org/terms-of-use)"),
            },
            {
                "groups": ("physics, cstheory, proofassistants (`math_adjacent`)"),
                "input": "web_se",
                "repo": "EleutherAI/math-lm (branch `instruct_data`)",
                "path": ("instruct_data/filtered-stack-exchange/physics_35votes.jsonl`, "
                         "`instruct_data/filtered-stack-exchange/cstheory_10votes.jsonl` "
                         "and `instruct_data/filtered-stack-exchange/"
                         "proofassistants_7votes.jsonl"),
                "path_note": ("highly voted Q&A pages of physics.stackexchange.com, "
                              "cstheory.stackexchange.com and "
                              "proofassistants.stackexchange.com (title + question + top "
                              "answer, Markdown with LaTeX), together 628 records, 272 "
                              "physics + 213 cstheory + 143 proofassistants; shared "
                              "`web_corpus/mathadjacent_physics_cstheory_proofassistants_se"
                              ".jsonl` holds a random half of them, 314"),
                "commit": "1d749d37185a97c1bef3188d164597e4b6a0e8d0",
                "license": ("CC BY-SA 4.0 (Stack Exchange user contributions; attribution "
                            "via each record's `url`; "
                            "https://creativecommons.org/licenses/by-sa/4.0/); the "
                            "EleutherAI/math-lm repository is MIT (Copyright (c) 2023 "
                            "Zhangir Azerbayev)"),
            },
        ],
        "license_short": ("ODC-BY 1.0 (C4) / Apache-2.0 (Common Crawl WARC) / "
                          "CC BY-SA 4.0 (Stack Exchange), by record"),
    },
}

ORDER = ["math", "gsm8k", "dapo", "aime", "deepscaler", "texts", "web"]


def render_sources(facts: dict, outdir: Path) -> str:
    L: list[str] = []
    a = L.append
    a("# Demo pool: sources")
    a("")
    a("The demo pool is real public data redistributed under the original licenses "
      "listed below (full texts and notices in [LICENSES.md](LICENSES.md)). It is a "
      "small, deterministic subset of five public math data sets, bundled so that "
      "`make demo` runs offline, plus a small corpus of real math web texts "
      "(`math_texts.jsonl`) and one of real general and math-adjacent web pages "
      "(`web_pages.jsonl`). Each of the five data set files keeps its source's "
      "original file format, field names and values; only rows were subset (and the "
      "parquet files re-encoded with zstd, the AIME array re-serialised compactly). "
      "`math_texts.jsonl` keeps four fields of its source and cuts each text to "
      f"{TEXT_MAX_CHARS:,} characters; `web_pages.jsonl` keeps four fields of its "
      f"sources, adds a `kind` label and cuts each text to {WEB_MAX_CHARS:,} "
      "characters (see their sections). "
      "`python data/demo/make_demo.py` regenerates every file here byte for byte from "
      "the shared data (see the script's docstring; the parquet bytes depend on the "
      f"pyarrow version, {pa.__version__} here).")
    a("")
    a("| file | format | rows | bytes | license |")
    a("|---|---|---:|---:|---|")
    total = 0
    for k in ORDER:
        p = outdir / OUT_NAMES[k]
        size = p.stat().st_size
        total += size
        lic = META[k].get("license_short") or (
            "MIT" if META[k]["license"].startswith("MIT") else "Apache-2.0")
        a(f"| `{OUT_NAMES[k]}` | {p.suffix[1:]} | {facts[k]['rows']:,} | {size:,} | {lic} |")
    a("")
    a(f"Total: {total:,} bytes.")
    a("")
    for k in ORDER:
        p = outdir / OUT_NAMES[k]
        m = META[k]
        a(f"## `{OUT_NAMES[k]}`")
        a("")
        a(f"- What: {m['what']}")
        a(f"- Format: {m['format']}")
        if "sources" in m:
            a(f"- Sources ({len(m['sources'])} shared files):")
            for src in m["sources"]:
                src_rel, src_sha = INPUTS[src["input"]]
                a(f"  - Group {src['groups']}:")
                a(f"    - Origin repository: {src['repo']}")
                a(f"    - Original path: `{src['path']}` ({src['path_note']})")
                a(f"    - Commit: `{src['commit']}`")
                a(f"    - License: {src['license']}")
                a(f"    - Taken from: shared `{src_rel}` (sha256 `{src_sha}`)")
        else:
            src_rel, src_sha = INPUTS[k]
            a(f"- Origin repository: {m['repo']}")
            a(f"- Original path: `{m['path']}`"
              + (f" ({m['path_note']})" if "path_note" in m else ""))
            a(f"- Commit: `{m['commit']}`")
            a(f"- License: {m['license']}")
            a(f"- Taken from: shared `{src_rel}` (sha256 `{src_sha}`)")
        a(f"- Subset: {facts[k]['subset']}")
        a(f"- Rows: {facts[k]['rows']:,}"
          + (" (" + ", ".join(f"{g['group']} {g['n']}" for g in facts[k]["groups"]) + ")"
             if "groups" in facts[k] else ""))
        a(f"- Size: {p.stat().st_size:,} bytes")
        a(f"- sha256: `{sha256_file(p)}`")
        for note in facts[k].get("notes", []):
            a(f"- Note: {note}")
        a("")
    a("## What the demo exercises")
    a("")
    for line in facts["exercises"]:
        a(f"- {line}")
    a("")
    return "\n".join(L)


MIT_TEXT = """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE."""


def render_licenses() -> str:
    L: list[str] = []
    a = L.append
    a("# Demo pool: licenses")
    a("")
    a("The files in this directory are subsets of public data sets, redistributed "
      "under their original licenses. Changes made: only a subset of rows was kept "
      "(see SOURCES.md for how); the two parquet files were re-written with zstd "
      "compression and `aime_1983_2023.json` was re-serialised without indentation. "
      "In those files no field name or value was changed. (`math_train.jsonl` rows "
      "carry a `unique_id` field that was added when the per-problem MATH files were "
      "concatenated into one JSONL; see SOURCES.md.) `math_texts.jsonl` was changed "
      "more: only the fields `id`, `url`, `title`, `text` were kept, `title` is the "
      "first line of the text, and `text` was cut to its first "
      f"{TEXT_MAX_CHARS:,} characters; the records were re-serialised as JSON lines. "
      "`web_pages.jsonl` was changed likewise: only the fields `id`, `url`, `domain`, "
      "`text` were kept, `domain` is the url's host without `www.`, a `kind` label "
      f"(`general` | `math_adjacent`) was added, and `text` was cut to its first "
      f"{WEB_MAX_CHARS:,} characters; the records were re-serialised as JSON lines. "
      "Its records come from three sources under three different licenses; each "
      "record's license follows from its `kind` and `url` (see below and SOURCES.md).")
    a("")
    a("## MIT License")
    a("")
    a("Applies to:")
    a("")
    a("- `gsm8k_train.jsonl`: GSM8K, openai/grade-school-math "
      "(Copyright (c) 2021 OpenAI).")
    a("- `aime_1983_2023.json`: agentica-project/rllm "
      "(Copyright (c) 2025 agentica-project).")
    a("- `math_train.jsonl`: the MATH dataset itself, hendrycks/math "
      "(Copyright (c) 2021 Dan Hendrycks); the copy bundled here was taken from "
      "aiwaves-cn/agents, which is Apache-2.0 (see below).")
    a("- `math_texts.jsonl`: the EleutherAI/math-lm repository it was taken from "
      "(Copyright (c) 2023 Zhangir Azerbayev); the Stack Exchange texts themselves "
      "are CC BY-SA 4.0, see below.")
    a("- `web_pages.jsonl`, records with `kind` `math_adjacent`: the same "
      "EleutherAI/math-lm repository; the Stack Exchange texts themselves are "
      "CC BY-SA 4.0, see below.")
    a("")
    for holder in ("2021 OpenAI", "2025 agentica-project", "2021 Dan Hendrycks",
                   "2023 Zhangir Azerbayev"):
        a("```")
        a("MIT License")
        a("")
        a(f"Copyright (c) {holder}")
        a("")
        a(MIT_TEXT)
        a("```")
        a("")
    a("## Apache License 2.0")
    a("")
    a("Licensed under the Apache License, Version 2.0 (the \"License\"); you may not "
      "use these files except in compliance with the License. You may obtain a copy "
      "of the License at")
    a("")
    a("    https://www.apache.org/licenses/LICENSE-2.0")
    a("")
    a("Unless required by applicable law or agreed to in writing, software "
      "distributed under the License is distributed on an \"AS IS\" BASIS, WITHOUT "
      "WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the "
      "License for the specific language governing permissions and limitations under "
      "the License.")
    a("")
    a("Applies to (attribution):")
    a("")
    a("- `math_train.jsonl`: from aiwaves-cn/agents "
      "(`src/agents/datasets/data/math/train/`, commit "
      "e8c4e3c2d19739d3dff59e577d1c97090cc15f59), Apache-2.0; the MATH data set "
      "(Hendrycks et al. 2021) it contains is MIT, see above.")
    a("- `dapo_math_17k.parquet`: from MasterVito/SvS (`data/dapo_math_17k.parquet`, "
      "commit 9fd8f35375b31b8632b52e715296c264a3ad4176), Apache-2.0; derived from "
      "BytedTsinghua-SIA/DAPO-Math-17k, Apache-2.0.")
    a("- `deepscaler_sample.parquet`: from manhitv/model-checkpoint-scoring "
      "(`data/deepscaler_train.parquet`, commit "
      "cd7aa6f545afc026c08d7e2704c960a615785fd6), Apache-2.0; a sample of "
      "agentica-org DeepScaleR-Preview-Dataset.")
    a("- `web_pages.jsonl`, records with `kind` `general` and an `id` starting with "
      "`olmo-c4-`: from allenai/OLMo (`test_fixtures/c4-sample.00000-of-00001.json.gz`, "
      "commit 06c867c36986328ac31e3877faca286dba0925c3), Apache-2.0; the C4 data "
      "itself is ODC-BY 1.0, see below.")
    a("- `web_pages.jsonl`, records with `kind` `general` and an `id` starting with "
      "`dolma-ccwarc-`: from allenai/dolma "
      "(`tests/data/formats/gz/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz`, "
      "commit 937ccc06f6fa4cefba496b2f48cc77418b941345), Apache-2.0; text extracted "
      "from one 2019 Common Crawl WARC, also subject to the Common Crawl terms of use "
      "(https://commoncrawl.org/terms-of-use).")
    a("")
    a("## Open Data Commons Attribution License v1.0 (ODC-BY 1.0)")
    a("")
    a("Applies to the `web_pages.jsonl` records whose `id` starts with `olmo-c4-`: "
      "documents of C4 (the Colossal Clean Crawled Corpus, English), released by AllenAI "
      "under ODC-BY 1.0, taken from the allenai/OLMo test fixture named above. The "
      "license text is at")
    a("")
    a("    https://opendatacommons.org/licenses/by/1-0/")
    a("")
    a("Attribution: C4 (Raffel et al. 2020, \"Exploring the Limits of Transfer Learning "
      "with a Unified Text-to-Text Transformer\"), as prepared and released by AllenAI; "
      "each record's `url` is the page the text was crawled from. By using these "
      "records you are also bound by the Common Crawl terms of use in respect of the "
      "content they contain:")
    a("")
    a("    https://commoncrawl.org/terms-of-use")
    a("")
    a("Changes made: records subset, fields reduced to `id`, `url`, `domain` (rebuilt "
      "from the url), `text`, a `kind` label added, and `text` cut to its first "
      f"{WEB_MAX_CHARS:,} characters (see SOURCES.md).")
    a("")
    a("## Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0)")
    a("")
    a("Applies to `math_texts.jsonl`: questions and answers contributed by users of "
      "math.stackexchange.com and mathoverflow.net (Stack Exchange network), taken from "
      "EleutherAI/math-lm (branch `instruct_data`, "
      "`instruct_data/filtered-stack-exchange/math_33votes.jsonl` and "
      "`math_overflow_40votes.jsonl`, commit 1d749d37185a97c1bef3188d164597e4b6a0e8d0). "
      "Licensed under CC BY-SA 4.0; the license text is at")
    a("")
    a("    https://creativecommons.org/licenses/by-sa/4.0/")
    a("")
    a("Attribution: each record's `url` links to the original question page on "
      "math.stackexchange.com or mathoverflow.net, which names the authors of the "
      "question and the answers (the records carry no author names). Changes made: "
      "records subset, fields reduced to `id`, `url`, `title`, `text`, and `text` cut "
      f"to its first {TEXT_MAX_CHARS:,} characters (see SOURCES.md). ShareAlike: "
      "this file, and adaptations of it, are distributed under CC BY-SA 4.0 (or a "
      "compatible license). Stack Exchange licenses each post revision under the CC "
      "BY-SA version in force when it was posted (2.5 before 2011-04-08, 3.0 until "
      "2018-05-02, 4.0 after); a post's page shows its version.")
    a("")
    a("Also applies to the `web_pages.jsonl` records with `kind` `math_adjacent`: "
      "questions and answers contributed by users of physics.stackexchange.com, "
      "cstheory.stackexchange.com and proofassistants.stackexchange.com, taken from "
      "EleutherAI/math-lm (branch `instruct_data`, "
      "`instruct_data/filtered-stack-exchange/physics_35votes.jsonl`, "
      "`cstheory_10votes.jsonl` and `proofassistants_7votes.jsonl`, commit "
      "1d749d37185a97c1bef3188d164597e4b6a0e8d0), under the same terms: attribution "
      "via each record's `url` (the question page names the authors); changes made: "
      "records subset, fields reduced to `id`, `url`, `domain`, `text`, a `kind` label "
      f"added, and `text` cut to its first {WEB_MAX_CHARS:,} characters; ShareAlike "
      "as above.")
    a("")
    return "\n".join(L)


# --------------------------------------------------------------------------

def exercises(f: dict) -> list[str]:
    d, ds = f["dapo"], f["deepscaler"]
    st = d["stats"]
    out = [
        (f"Duplicates (`dapo_math_17k.parquet`): {st['exact_groups']} groups of "
         f"byte-identical problems ({st['exact_rows']} rows, {st['exact_extra_rows']} "
         f"redundant; group sizes {st['group_sizes']}), {st['exact_conflicting']} of them "
         f"with conflicting ground_truth answers; after collapsing whitespace "
         f"{st['ws_groups']} groups ({st['ws_conflicting']} conflicting). The full "
         f"17,917-row file has {d['selection']['all_dup_groups']} exact groups, "
         f"{d['selection']['all_conflicting_groups']} conflicting; all conflicting ones "
         f"are here."),
        (f"Cross-source duplicates (`deepscaler_sample.parquet`): {ds['overlap']} rows "
         f"whose problem also occurs in the bundled AIME or MATH rows "
         f"({', '.join(f'{k}: {v}' for k, v in ds['overlap_by'].items())}); "
         f"within the sample itself {ds['stats']['exact_groups']} exact duplicate groups."),
    ]
    out += f["quirks"]
    return out


def quirks(f: dict) -> list[str]:
    """Data facts a reader of these formats has to cope with (computed).

    Each count is given as "N here / M in the full source file"."""

    def both(key: str, pred) -> str:
        here = sum(1 for r in f[key]["records"] if pred(r))
        full = sum(1 for r in f[key]["all_records"] if pred(r))
        return f"{here} here / {full} in the full file"

    q = []
    q.append(
        "`math_train.jsonl`: `level` is a string \"Level 1\"..\"Level 5\" or \"Level ?\" ("
        + both("math", lambda r: r["level"] == "Level ?") + "); solutions with more "
        "than one \\boxed: " + both("math", lambda r: r["solution"].count("\\boxed") > 1)
        + "; `\\boxed {...}` with a space: "
        + both("math", lambda r: "\\boxed " in r["solution"])
        + "; non-ASCII is raw UTF-8 (not \\u-escaped): "
        + both("math", lambda r: any(ord(c) > 127 for c in r["problem"] + r["solution"]))
        + "; literal tab characters inside strings: "
        + both("math", lambda r: "\t" in r["problem"] + r["solution"]) + ".")
    q.append(
        "`gsm8k_train.jsonl`: final answers after `####` with thousands separators "
        "(e.g. `1,080`): "
        + both("gsm8k", lambda r: "," in r["answer"].rsplit("####", 1)[1])
        + "; non-ASCII is written as JSON `\\uXXXX` escapes (e.g. \\u2019, \\u20ac); "
        "`<<a*b=c>>` calculator annotations in "
        + both("gsm8k", lambda r: "<<" in r["answer"]) + ".")

    def ctrl(r):
        return any((ord(c) < 32 and c not in "\n\t") or 0x80 <= ord(c) < 0xA0
                   for c in first_content(r))

    def gt(r):
        return r["reward_model"]["ground_truth"]

    q.append(
        "`dapo_math_17k.parquet`: `reward_model.ground_truth` is an integer held as a "
        "*string*; negative: " + both("dapo", lambda r: gt(r).startswith("-"))
        + ", beyond int64 (e.g. 20000000000000000000000): "
        + both("dapo", lambda r: abs(int(gt(r))) >= 2 ** 63)
        + "; `extra_info.answer` is the empty string in every row ("
        + both("dapo", lambda r: r["extra_info"]["answer"] == "")
        + "); problems with control characters (form feed from a mis-escaped "
        "`\\f`rac, backspace from `\\b`eta, C1 bytes such as U+0088): "
        + both("dapo", ctrl) + "; Chinese problems: "
        + both("dapo", lambda r: any("\u4e00" <= c <= "\u9fff" for c in first_content(r)))
        + "; problems with leading/trailing whitespace: "
        + both("dapo", lambda r: first_content(r) != first_content(r).strip()) + ".")
    q.append(
        "`aime_1983_2023.json`: `answer` is a string; with leading zeros (\"012\"): "
        + both("aime", lambda r: len(r["answer"]) > 1 and r["answer"].startswith("0"))
        + "; solutions that box a zero-padded form (`\\boxed{015}` for answer \"15\"): "
        + both("aime", lambda r: f"{{0{r['answer']}}}" in r["solution"])
        + "; solutions without any \\boxed (e.g. `\\fbox{363}`): "
        + both("aime", lambda r: "\\boxed" not in r["solution"])
        + "; non-breaking spaces (U+00A0): "
        + both("aime", lambda r: "\xa0" in r["problem"] + r["solution"]) + ".")
    q.append(
        "`deepscaler_sample.parquet`: ground truths that are not plain integers (LaTeX "
        "fractions, radicals, tuples, equations, percentages): "
        + both("deepscaler", lambda r: not gt(r).lstrip("-").isdigit())
        + "; the instruction suffix is part of prompt[0].content; ground_truth and "
        "difficulty appear both at top level and inside reward_model/extra_info; the "
        "pandas metadata declares `__index_level_0__` as the index column (pandas "
        "readers turn it into the index, pyarrow/polars keep it as a column).")
    n_long = sum(len(r["text"]) > TEXT_MAX_CHARS for r in f["texts"]["all_records"])
    q.append(
        "`math_texts.jsonl`: free text with LaTeX, no answer field; texts cut to "
        f"{TEXT_MAX_CHARS:,} characters: {f['texts']['n_cut']} here (the full file has "
        f"{n_long} texts longer than that); carriage returns (`\\r`) in `text`: "
        + both("texts", lambda r: "\r" in r["text"])
        + "; non-ASCII in `text`: "
        + both("texts", lambda r: any(ord(c) > 127 for c in r["text"]))
        + "; titles with leading/trailing whitespace: "
        + both("texts", lambda r: r["title"] != r["title"].strip()) + ".")

    def mostly_non_ascii(r):
        t = r["text"][:WEB_MAX_CHARS]
        return sum(ord(c) > 127 for c in t) > 0.2 * len(t)

    web = f["web"]
    n_long = sum(len(r["text"]) > WEB_MAX_CHARS for r in web["all_records"])
    n_dup = len(web["records"]) - len({r["text"] for r in web["records"]})
    q.append(
        "`web_pages.jsonl`: labels by origin only (`kind`: "
        + ", ".join(f"{v} {k}" for k, v in sorted(collections.Counter(
            r["kind"] for r in web["records"]).items()))
        + "); texts cut to "
        f"{WEB_MAX_CHARS:,} characters: {web['n_cut']} here (the three shared files have "
        f"{n_long} texts longer than that); texts under 200 characters: "
        + both("web", lambda r: len(r["text"]) < 200)
        + "; texts where more than 20% of the first 1,500 characters are non-ASCII "
        "(mostly non-Latin scripts): " + both("web", mostly_non_ascii)
        + "; HTML entities left in the text (e.g. `&apos;`): "
        + both("web", lambda r: re.search(r"&(?:apos|amp|quot|lt|gt|#\d+);", r["text"])
               is not None)
        + "; carriage returns (`\\r`) in `text`: " + both("web", lambda r: "\r" in r["text"])
        + "; texts with leading/trailing whitespace: "
        + both("web", lambda r: r["text"] != r["text"].strip())
        + "; `http://` (not https) urls: "
        + both("web", lambda r: r["url"].startswith("http://"))
        + f"; byte-identical texts here: {n_dup} extra copies.")
    return q


def build(shared: Path, outdir: Path, allow_changed: bool) -> dict:
    for rel, sha in INPUTS.values():
        p = shared / rel
        if not p.is_file():
            raise SystemExit(f"missing input: {p}")
        got = sha256_file(p)
        if got != sha and not allow_changed:
            raise SystemExit(f"{p}: sha256 {got} != expected {sha} "
                             "(use --allow-changed-inputs to build anyway)")
    outdir.mkdir(parents=True, exist_ok=True)
    o = {k: outdir / v for k, v in OUT_NAMES.items()}
    s = {k: shared / v[0] for k, v in INPUTS.items()}
    f: dict = {}
    f["math"] = build_math(s["math"], o["math"])
    f["gsm8k"] = build_gsm8k(s["gsm8k"], o["gsm8k"])
    f["dapo"] = build_dapo(s["dapo"], o["dapo"])
    f["aime"] = build_aime(s["aime"], o["aime"])
    f["deepscaler"] = build_deepscaler(s["deepscaler"], o["deepscaler"],
                                       f["math"]["records"], f["aime"]["records"])
    f["texts"] = build_texts(s["texts"], o["texts"])
    f["web"] = build_web({k: s[k] for k in ("web_c4", "web_ccwarc", "web_se")}, o["web"])
    f["quirks"] = quirks(f)
    f["exercises"] = exercises(f)
    (outdir / "SOURCES.md").write_text(render_sources(f, outdir), encoding="utf-8")
    (outdir / "LICENSES.md").write_text(render_licenses(), encoding="utf-8")
    return f


def digests(outdir: Path) -> dict[str, str]:
    names = [*OUT_NAMES.values(), "SOURCES.md", "LICENSES.md"]
    return {n: sha256_file(outdir / n) for n in names}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                    help=f"shared data directory (default: {DEFAULT_SHARED})")
    ap.add_argument("--out", type=Path, default=HERE,
                    help=f"output directory (default: {HERE})")
    ap.add_argument("--allow-changed-inputs", action="store_true",
                    help="build even if an input's sha256 differs from the recorded one")
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temporary directory and compare sha256 with --out")
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            build(args.shared, Path(tmp), args.allow_changed_inputs)
            new, old = digests(Path(tmp)), digests(args.out)
        bad = [n for n in new if new[n] != old[n]]
        for n in new:
            print(f"{'OK  ' if n not in bad else 'DIFF'} {new[n]}  {n}")
        return 1 if bad else 0
    f = build(args.shared, args.out, args.allow_changed_inputs)
    for k in ORDER:
        p = args.out / OUT_NAMES[k]
        print(f"{OUT_NAMES[k]:28s} {f[k]['rows']:6d} rows {p.stat().st_size:10,d} bytes")
    for line in f["exercises"]:
        print("-", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
