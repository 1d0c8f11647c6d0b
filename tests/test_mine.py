"""Corpus mining: the page classifier (real fastText), the scoring and keeping stages, the
domain report, and the iterations of `curate.mine.mine` on real pages (the bundled
math.SE / MathOverflow texts and general and math-adjacent web pages)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import curate
from curate.errors import ConfigError
from curate.run import apply_stage

pytest.importorskip("fasttext")

from curate.mine import (
    Classifier,
    ClassifierScore,
    FastTextOptions,
    KeepTop,
    domain,
    domain_report,
    location,
    mine,
    normalize,
    train_classifier,
    under_paths,
)

DEMO = Path(__file__).parents[1] / "data" / "demo"
TEXTS = [json.loads(line) for line in (DEMO / "math_texts.jsonl").read_text().splitlines()]
PAGES = [json.loads(line) for line in (DEMO / "web_pages.jsonl").read_text().splitlines()]
GENERAL = [p for p in PAGES if p["kind"] == "general"]
SMALL = FastTextOptions(epoch=25, dim=64, bucket=200_000)  # a few hundred pages, not 1M


def _jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"text": r["text"], "url": r["url"]}) + "\n" for r in rows))
    return path


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """The chance a random positive scores above a random negative (ties count half)."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_normalize_handles_junk_and_huge_pages() -> None:
    assert normalize("") == ""
    assert normalize("\x00\x01\x02 \ufffd\ufffd") == ""  # binary junk
    huge = "word " * 3_000_000  # 15 MB on one line: read up to MAX_CHARS, a line up to 1,024
    assert len(normalize(huge).split()) == 1024
    assert normalize("Ｆｕｌｌ ２０２４") == "full 0000"  # NFKC, digits


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    out = tmp_path_factory.mktemp("clf") / "math.bin"
    trained = train_classifier(
        [t["text"] for t in TEXTS[::2]], [p["text"] for p in GENERAL[::2]], out, options=SMALL
    )
    assert trained.path == out and trained.positives == 80 and trained.negatives == 120
    return Classifier(out)


def test_the_classifier_tells_math_pages_from_general_ones(classifier: Classifier) -> None:
    math = classifier.scores([t["text"] for t in TEXTS[1::2]])  # held out
    general = classifier.scores([p["text"] for p in GENERAL[1::2]])
    assert _auc(math, general) > 0.95
    assert (math >= 0.5).mean() > 0.7 and (general < 0.5).mean() > 0.9
    assert classifier.scores(["", None]).tolist() == [0.0, 0.0]


def test_training_needs_both_kinds_of_pages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="positive and negative"):
        train_classifier(["a page"], ["", "  "], tmp_path / "x.bin")
    with pytest.raises(ConfigError, match="no classifier"):
        Classifier(tmp_path / "missing.bin")
    with pytest.raises(ConfigError, match="epoch"):
        FastTextOptions(epoch=0)


def test_score_and_keep_stages_in_a_run(tmp_path: Path, classifier: Classifier) -> None:
    rows = [*TEXTS[1:40:2], *GENERAL[1:60:2], {"text": "", "url": "https://empty.org/"}]
    pool = curate.read(_jsonl(tmp_path / "pool.jsonl", rows), kind="documents")
    stages = [ClassifierScore(model=str(classifier.path)), KeepTop(share=0.4)]
    run = curate.Recipe("mine", [pool], stages).run(tmp_path / "run")
    kept = run.sql("SELECT url, math_score, rank FROM documents ORDER BY rank")
    assert kept.height == round(0.4 * 50)  # 50 pages with text; the empty one is an ingest reject
    assert kept["url"].str.contains("stackexchange|mathoverflow").mean() >= 0.8
    rejects = dict(run.sql("SELECT reason, count(*) FROM rejects GROUP BY 1").rows())
    assert rejects == {"empty_text": 1, "below_cutoff": 30}
    detail = run.sql("SELECT detail FROM rejects WHERE reason = 'below_cutoff' LIMIT 1")["detail"]
    assert detail[0].startswith("math_score ") and "of 50)" in detail[0]


def test_keep_top_cuts_by_threshold_share_or_tokens() -> None:
    rows = pl.DataFrame(
        {"id": ["a", "b", "c", "d"], "math_score": [0.9, 0.2, 0.9, 0.6], "tokens": [10, 5, 30, 8]}
    )
    kept = {
        name: apply_stage(stage, rows)[0]["id"].to_list()
        for name, stage in {
            "threshold": KeepTop(threshold=0.5),
            "share": KeepTop(share=0.5),
            "tokens": KeepTop(tokens=45),
        }.items()
    }
    assert kept == {"threshold": ["a", "c", "d"], "share": ["a", "c"], "tokens": ["a", "c"]}
    assert apply_stage(KeepTop(share=0.5), rows)[0]["rank"].to_list() == [1, 2]  # ties by id
    with pytest.raises(ConfigError, match="exactly one"):
        KeepTop(threshold=0.5, share=0.1)
    with pytest.raises(ConfigError, match="exactly one"):
        KeepTop()


def test_domains_and_paths() -> None:
    assert domain("https://www.MathOverflow.net/q/1") == "mathoverflow.net"
    assert domain(None) is None and domain("") is None and domain("not a url at all") is not None
    assert location("mathoverflow.net/questions/") == "mathoverflow.net/questions"
    urls = pl.Series(["https://a.org/q/1", "http://www.a.org/q/2", "https://a.org/qq/3", None])
    assert under_paths(urls, ["https://www.a.org/q"]).to_list() == [True, True, False, False]
    report = domain_report(
        pl.Series(
            ["https://a.org/1", "https://a.org/2", "https://a.org/3", "https://b.org/1", None]
        ),
        pl.Series([True, False, False, True, True]),
    )
    rows = {r["domain"]: r for r in report.to_dicts()}
    assert rows["a.org"]["share"] == pytest.approx(1 / 3) and rows["a.org"]["math_related"]
    assert not rows["b.org"]["math_related"]  # one page is not evidence
    assert rows[None]["pages"] == 1 and not rows[None]["math_related"]


def test_a_second_iteration_seeded_by_a_confirmed_path_recovers_missed_pages(
    tmp_path: Path,
) -> None:
    """Seeds: math.stackexchange pages. Pool: MathOverflow pages, math-adjacent pages
    (physics, theoretical CS, proof assistants) and general pages. Confirming the proof
    assistants' questions path adds its uncollected pages to the seeds; the retrained
    classifier then collects pages the first one missed, under that path and elsewhere."""
    seeds = [t for t in TEXTS if "math.stackexchange" in t["url"]]
    pool = [t for t in TEXTS if "mathoverflow" in t["url"]] + PAGES

    def read(name: str, rows: list[dict[str, str]]) -> curate.Source:
        return curate.read(_jsonl(tmp_path / f"{name}.jsonl", rows), kind="documents")

    path = "proofassistants.stackexchange.com/questions"
    result = mine(
        read("pool", pool), read("seeds", seeds), tmp_path / "mine",
        negatives=read("negatives", GENERAL[::2]), iterations=2, paths=[path], options=SMALL,
    )  # fmt: skip
    first, second = result.iterations
    assert first.seeds == len(seeds) and first.added_seeds > 0
    assert "proofassistants.stackexchange.com" in first.math_domains
    assert second.seeds == len(seeds) + first.added_seeds and second.new > 0

    def kept(n: int) -> set[str]:
        return set(result.run(n).sql("SELECT url FROM documents")["url"])

    recovered = kept(2) - kept(1)
    assert any(path in u for u in recovered)
    assert any(path not in u and "mathoverflow" in u for u in recovered)  # beyond the path
    assert set(result.collected) >= set(result.run(1).sql("SELECT id FROM documents")["id"])
    summary = json.loads((tmp_path / "mine" / "mine.json").read_text())
    assert [i["iteration"] for i in summary["iterations"]] == [1, 2]
    report = pl.read_parquet(tmp_path / "mine" / "iter-1" / "domains.parquet")
    assert report.filter(pl.col("domain") == "mathoverflow.net")["pages"].item() == 31
    # an unchanged second call reuses every classifier and stage
    again = mine(
        read("pool", pool), read("seeds", seeds), tmp_path / "mine",
        negatives=read("negatives", GENERAL[::2]), iterations=2, paths=[path], options=SMALL,
    )  # fmt: skip
    assert again.collected == result.collected


def test_mining_stops_when_little_is_new(tmp_path: Path) -> None:
    seeds = [t for t in TEXTS if "math.stackexchange" in t["url"]]
    pool = [t for t in TEXTS if "mathoverflow" in t["url"]] + GENERAL
    pool_src = curate.read(_jsonl(tmp_path / "pool.jsonl", pool), kind="documents")
    seed_src = curate.read(_jsonl(tmp_path / "seeds.jsonl", seeds), kind="documents")
    result = mine(pool_src, seed_src, tmp_path / "m", iterations=4, stop_at=0.9, options=SMALL)
    assert len(result.iterations) == 2  # the second found nothing new: stop
    assert result.iterations[1].already_collected >= 0.9
    negatives = result.iterations[0].negatives
    assert negatives == len(seeds)  # sampled from the pool, as many as the seeds


def test_cli_mine(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    seeds = _jsonl(tmp_path / "s.jsonl", [t for t in TEXTS if "math.stackexchange" in t["url"]])
    pool = _jsonl(tmp_path / "p.jsonl", [t for t in TEXTS if "mathoverflow" in t["url"]] + GENERAL)
    paths = tmp_path / "paths.txt"
    paths.write_text("# confirmed\nmathoverflow.net/questions\n")
    out = tmp_path / "out"
    args = ["mine", str(pool), "--seeds", str(seeds), "--out", str(out), "--iterations", "1"]
    result = CliRunner().invoke(app, [*args, "--share", "0.2", "--paths", str(paths), "-q"])
    assert result.exit_code == 0, result.output
    assert "iteration 1:" in result.output and (out / "iter-1" / "classifier.bin").exists()
    bad = CliRunner().invoke(app, [*args, "--share", "0.2", "--threshold", "0.5", "-q"])
    assert bad.exit_code == 2 and "exactly one" in bad.output


def test_segment_decontamination_removes_only_the_benchmark_segments(tmp_path: Path) -> None:
    from curate.mine.decontam import SegmentDecontaminate

    gsm = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and"
    rows = [
        {"text": f"Intro line.\nQuiz: {gsm} bakes muffins.\nOutro line.", "url": "https://a.org/1"},
        {"text": gsm, "url": "https://a.org/2"},  # nothing but the benchmark: rejected
        {"text": "A clean page about primes.\nNo benchmark here.", "url": "https://a.org/3"},
    ]
    docs = curate.read(_jsonl(tmp_path / "d.jsonl", rows), kind="documents")
    run = curate.Recipe("clean", [docs], [SegmentDecontaminate(benchmarks=["gsm8k"])]).run(
        tmp_path / "run"
    )
    kept = run.sql(
        "SELECT text, clean_text, removed_spans, removed_chars FROM documents ORDER BY id"
    )
    first = kept.row(0, named=True)
    assert first["clean_text"] == "Intro line.\nOutro line."
    span = first["removed_spans"][0]
    assert first["text"][span["start"] : span["end"]].startswith("Quiz: Janet")
    assert (span["benchmark"], span["item_id"], span["rule"]) == ("gsm8k", "test-0", "ngram")
    assert kept.row(1, named=True)["clean_text"] == kept.row(1, named=True)["text"]
    reject = run.sql("SELECT reason, detail FROM rejects").row(0)
    assert reject[0] == "contaminated" and "gsm8k item test-0" in reject[1]
    stats = run.stages[-1].stats
    assert stats["pages_touched"] == 2 and stats["by_benchmark"] == {"gsm8k": 2}


def test_minhash_dedups_documents(tmp_path: Path) -> None:
    page = TEXTS[0]["text"]
    rows = [TEXTS[0], {"text": page.replace("prime", "Prime") + " Edited.", "url": "u2"}, TEXTS[1]]
    docs = curate.read(_jsonl(tmp_path / "d.jsonl", rows), kind="documents")
    run = curate.Recipe("dedup", [docs], [curate.MinHashDedup(column="text")]).run(tmp_path / "r")
    assert run.sql("SELECT count(*) FROM documents").item() == 2
    assert run.sql("SELECT reason FROM rejects").item() == "duplicate"


def test_pretrain_export_writes_clean_text_and_token_counts(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from curate.export.pretrain import export_pretrain, read_manifest
    from curate.mine.decontam import SegmentDecontaminate
    from curate.toy import toy_model

    gsm = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and"
    rows = [TEXTS[0], {"text": f"Keep this.\n{gsm}", "url": "https://a.org/2"}, TEXTS[1]]
    docs = curate.read(_jsonl(tmp_path / "d.jsonl", rows), kind="documents")
    run = curate.Recipe("pt", [docs], [SegmentDecontaminate(benchmarks=["gsm8k"])]).run(
        tmp_path / "run"
    )
    tokenizer = str(toy_model(steps=600))
    done = export_pretrain(run, tmp_path / "out", tokenizer=tokenizer, shard_rows=2)
    assert done.rows == 3 and len(done.files) == 2  # two rows per shard
    shards = pl.concat([pl.read_parquet(f) for f in done.files])
    assert shards["text"].to_list()[1] == "Keep this.\n"
    assert (shards["n_tokens"] > 0).all() and done.tokens == shards["n_tokens"].sum()
    assert shards["n_chars"].sum() == done.chars
    manifest = read_manifest(tmp_path / "out")
    assert manifest["text_column"] == "clean_text" and manifest["tokenizer"] == tokenizer
    again = export_pretrain(run, tmp_path / "out", text="text")  # replaces the export
    assert again.tokens is None and sorted(
        p.name for p in (tmp_path / "out" / "data").iterdir()
    ) == ["train-00000-of-00001.parquet"]
    problems = curate.Recipe("p", [curate.read(DEMO / "gsm8k_train.jsonl", problem="question")])
    with pytest.raises(ConfigError, match="run over problems"):
        export_pretrain(problems.run(tmp_path / "prun"), tmp_path / "x")


def test_bad_pages_are_handled_and_counted(tmp_path: Path) -> None:
    junk = "\x00\x01\x02\ufffd" * 1000
    bad = [
        {"text": "", "url": "https://empty.org/1"},
        {"text": junk, "url": "https://junk.org/1"},
        {"text": "lemma " * 2_000_000, "url": "https://huge.org/1"},  # 12 MB
        {"text": "A page with no address about integrals.", "url": None},
    ]
    seeds = [t for t in TEXTS if "math.stackexchange" in t["url"]]
    pool = [t for t in TEXTS if "mathoverflow" in t["url"]] + GENERAL + bad
    pool_src = curate.read(_jsonl(tmp_path / "pool.jsonl", pool), kind="documents")
    seed_src = curate.read(_jsonl(tmp_path / "seeds.jsonl", seeds), kind="documents")
    negatives = curate.read(_jsonl(tmp_path / "neg.jsonl", GENERAL[::2]), kind="documents")
    result = mine(pool_src, seed_src, tmp_path / "m", negatives=negatives, iterations=1,
                  options=SMALL)  # fmt: skip
    it = result.iterations[0]
    assert it.pages == len(pool) - 1 and it.no_url == 1  # the empty page: an ingest reject
    run = result.run(1)
    assert run.sql("SELECT reason FROM rejects WHERE stage = 'ingest'").item() == "empty_text"
    scores = dict(run.sql("SELECT url, math_score FROM classifier_score").rows())
    assert scores["https://junk.org/1"] == 0.0  # nothing left after normalisation
    assert 0.0 <= scores["https://huge.org/1"] <= 1.0
    report = pl.read_parquet(tmp_path / "m" / "iter-1" / "domains.parquet")
    assert report.filter(pl.col("domain").is_null())["pages"].item() == 1
