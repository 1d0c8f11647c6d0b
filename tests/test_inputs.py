"""Tests of the inputs curate reads beyond one plain file: compressed files, globs, folders
of shards (Hub-style and curate's exports), remote filesystems through fsspec (a local
stand-in: nothing is reached over the network), GSM8K without a mapping, paths past the end
of a list, slices (limit, sample), numeric levels, and meta without mapped nested fields."""

from __future__ import annotations

import bz2
import gzip
import importlib
import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.errors import ConfigError, InputError, MissingExtraError
from curate.io import BATCH_SIZE, read

DATA = Path(__file__).parent / "data" / "inputs"

ROWS = [
    {"problem": f"What is {i}+{i}?", "answer": str(2 * i), "level": f"Level {1 + i % 5}"}
    for i in range(12)
]


def jsonl_bytes(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def meta(df: pl.DataFrame, i: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(df["meta"][i])
    return out


def parquet(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def zstd(data: bytes) -> bytes:
    return bytes(pa.Codec("zstd").compress(data, asbytes=True))


COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".zst": zstd, ".xz": lzma.compress}


# ---------------------------------------------------------------------------- compression


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_compressed_jsonl_reads_like_plain(tmp_path: Path, suffix: str) -> None:
    plain = tmp_path / "pool.jsonl"
    plain.write_bytes(jsonl_bytes(ROWS))
    packed = tmp_path / f"pool.jsonl{suffix}"
    packed.write_bytes(COMPRESS[suffix](jsonl_bytes(ROWS)))
    src = read(packed)
    assert (src.name, src.format) == ("pool", "jsonl")  # the name without both suffixes
    assert src.frame().equals(read(plain).frame())  # same ids, same rows
    assert src.fingerprint() != read(plain).fingerprint()


def test_compressed_json_and_csv(tmp_path: Path) -> None:
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(orjson.dumps(ROWS[:3])))
    assert read(tmp_path / "a.json.gz").frame()["answer"].to_list() == ["0", "2", "4"]
    csv = b'problem,answer\n"What is\n1+1?",2\nWhat is 2+2?,4\n'
    (tmp_path / "b.csv.zst").write_bytes(zstd(csv))
    df = read(tmp_path / "b.csv.zst").frame()
    assert df["problem"].to_list() == ["What is\n1+1?", "What is 2+2?"]


def test_format_given_still_decompresses(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl.gz"
    p.write_bytes(gzip.compress(jsonl_bytes(ROWS[:2])))
    assert read(p, format="jsonl").frame().height == 2  # it used to advise iconv
    odd = tmp_path / "x.data.gz"
    odd.write_bytes(p.read_bytes())
    assert read(odd, format="jsonl").frame().height == 2


def test_compressed_bytes_under_a_plain_name_get_advice(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(gzip.compress(jsonl_bytes(ROWS[:2])))
    with pytest.raises(InputError, match=r"gzip-compressed .* \.gz") as e:
        read(p).frame()
    assert "iconv" not in str(e.value) and e.value.path == str(p)


def test_errors_in_a_compressed_file_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl.bz2"
    p.write_bytes(bz2.compress(jsonl_bytes(ROWS[:2]) + b"{oops\n"))
    with pytest.raises(InputError, match="not valid JSON") as e:
        read(p).frame()
    assert (e.value.path, e.value.line) == (str(p), 3)


def test_compressed_input_is_streamed(tmp_path: Path) -> None:
    """The first batch comes out before the reader reaches a broken line further on."""
    rows = [{"problem": f"p{i}"} for i in range(BATCH_SIZE + 5)]
    p = tmp_path / "big.jsonl.gz"
    p.write_bytes(gzip.compress(jsonl_bytes(rows) + b"not json\n"))
    batches = read(p).batches()
    assert next(batches).height == BATCH_SIZE
    with pytest.raises(InputError) as e:
        next(batches)
    assert e.value.line == BATCH_SIZE + 6
    assert read(p, limit=BATCH_SIZE + 5).frame().height == BATCH_SIZE + 5  # stops before it


def test_parquet_cannot_be_gzipped(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.parquet.gz").write_bytes(b"x")
    with pytest.raises(ConfigError, match="compressed inside"):
        read(tmp_path / "d")


# ----------------------------------------------------------------------- globs and folders


def hub_folder(root: Path) -> Path:
    """A dataset laid out as on the Hub: two train shards and a test shard."""
    parquet(root / "data" / "train-00000-of-00002.parquet", ROWS[:5])
    parquet(root / "data" / "train-00001-of-00002.parquet", ROWS[5:9])
    parquet(root / "data" / "test-00000-of-00001.parquet", ROWS[9:])
    (root / "README.md").write_text("# a dataset card without configs\n")
    return root


def test_hub_folder_reads_one_split_as_one_source(tmp_path: Path) -> None:
    folder = hub_folder(tmp_path / "pool")
    with pytest.raises(ConfigError, match=r"splits \['test', 'train'\]; pass split="):
        read(folder)
    train = read(folder, split="train")
    assert (train.name, train.format, train.split) == ("pool-train", "parquet", "train")
    df = train.frame()
    assert df["problem"].to_list() == [r["problem"] for r in ROWS[:9]]  # shards in order
    assert df["id"].to_list()[5].startswith("pool-train:5:")  # row numbers run on
    assert read(folder, split="train").frame()["id"].equals(df["id"])  # stable
    assert read(folder, split="test").frame().height == 3
    with pytest.raises(ConfigError, match="its splits are"):
        read(folder, split="validation")


def test_folder_fingerprint_follows_its_shards(tmp_path: Path) -> None:
    folder = hub_folder(tmp_path / "pool")
    before = read(folder, split="train").fingerprint()
    parquet(folder / "data" / "test-00000-of-00001.parquet", ROWS[:1])  # another split
    assert read(folder, split="train").fingerprint() == before
    parquet(folder / "data" / "train-00001-of-00002.parquet", ROWS[5:8])
    assert read(folder, split="train").fingerprint() != before


def test_readme_configs_choose_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    parquet(folder / "main" / "part-0.parquet", ROWS[:2])
    parquet(folder / "main" / "part-1.parquet", ROWS[2:4])
    parquet(folder / "other" / "part-0.parquet", ROWS[4:6])
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
        "    path: main/*.parquet\n  - split: extra\n    path: other/*\n---\n# card\n"
    )
    assert read(folder, split="train").frame().height == 4
    assert read(folder, split="extra").frame()["problem"][0] == ROWS[4]["problem"]


def test_folder_of_one_split_and_mixed_formats(tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    (folder / "b").mkdir(parents=True)
    (folder / "a.jsonl").write_bytes(jsonl_bytes(ROWS[:2]))
    (folder / "b" / "c.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes(ROWS[2:3])))
    (folder / ".cache").mkdir()
    (folder / ".cache" / "junk.jsonl").write_text("not data")  # hidden: not read
    src = read(folder)
    assert (src.name, src.format, src.split) == ("shards", "jsonl", None)
    assert src.frame().height == 3
    parquet(folder / "d.parquet", ROWS[3:4])
    with pytest.raises(ConfigError, match="several formats"):
        read(folder)
    assert read(folder, format="parquet").frame().height == 1


def test_errors_name_the_shard_and_its_row(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x-0.json").write_bytes(orjson.dumps(ROWS[:3]))
    (folder / "x-1.json").write_bytes(orjson.dumps([ROWS[0], {**ROWS[1], "answer": {"a": 1}}]))
    with pytest.raises(InputError) as e:
        read(folder).frame()
    assert (e.value.path, e.value.row, e.value.field) == (str(folder / "x-1.json"), 1, "answer")


def test_globs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_folder(tmp_path / "pool")
    src = read(tmp_path / "pool" / "data" / "train-*.parquet")
    assert (src.name, src.format) == ("train", "parquet")
    assert src.frame().height == 9
    (tmp_path / "deep" / "x").mkdir(parents=True)
    (tmp_path / "deep" / "x" / "b.jsonl").write_bytes(jsonl_bytes(ROWS[1:2]))
    (tmp_path / "deep" / "a.jsonl").write_bytes(jsonl_bytes(ROWS[:1]))
    monkeypatch.chdir(tmp_path)
    deep = read("deep/**/*.jsonl")
    assert deep.name == "deep"
    assert deep.frame()["problem"].to_list() == [ROWS[0]["problem"], ROWS[1]["problem"]]
    with pytest.raises(InputError, match="no file matches"):
        read("deep/*.parquet")
    with pytest.raises(ConfigError, match="glob"):
        read("deep/*.jsonl", split="train")


def test_curate_export_folder_reads_back(tmp_path: Path) -> None:
    import curate
    from curate.export.shards import export_run

    (tmp_path / "p.jsonl").write_bytes(jsonl_bytes(ROWS[:4]))
    run = curate.Recipe("r", [read(tmp_path / "p.jsonl")]).run(tmp_path / "run", progress=False)
    export_run(run, tmp_path / "out", format="rl", shard_rows=2)
    assert len(list((tmp_path / "out" / "data").glob("train-*.parquet"))) == 2
    df = read(tmp_path / "out").frame()
    assert df["problem"].to_list() == [r["problem"] for r in ROWS[:4]]
    assert df["answer"].to_list() == [r["answer"] for r in ROWS[:4]]


# ---------------------------------------------------------------------------- remote


@pytest.fixture
def memfs() -> Iterator[Any]:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    fs.rm("/", recursive=True) if fs.exists("/pool") else None
    yield fs
    if fs.exists("/pool"):
        fs.rm("/pool", recursive=True)


def put(fs: Any, path: str, data: bytes) -> None:
    with fs.open(path, "wb") as f:
        f.write(data)


def parquet_bytes(records: list[dict[str, Any]]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(records), sink)
    return bytes(sink.getvalue().to_pybytes())


def test_remote_files_globs_and_folders(memfs: Any) -> None:
    put(memfs, "/pool/data/train-00000-of-00002.parquet", parquet_bytes(ROWS[:5]))
    put(memfs, "/pool/data/train-00001-of-00002.parquet", parquet_bytes(ROWS[5:]))
    put(memfs, "/pool/extra.jsonl.gz", gzip.compress(jsonl_bytes(ROWS[:2])))
    one = read("memory://pool/extra.jsonl.gz")
    assert (one.name, one.location) == ("extra", "memory://pool/extra.jsonl.gz")
    assert one.frame().height == 2
    glob = read("memory://pool/data/train-*.parquet")
    assert glob.frame()["problem"].to_list() == [r["problem"] for r in ROWS]
    folder = read("memory://pool", format="parquet")
    assert folder.frame()["id"].to_list() == [
        i.replace("train:", "pool:", 1) for i in glob.frame()["id"]
    ]
    assert repr(folder).startswith("Source('pool', 'memory://pool', format='parquet'")
    before = glob.fingerprint()
    assert read("memory://pool/data/train-*.parquet").fingerprint() == before
    put(memfs, "/pool/data/train-00001-of-00002.parquet", parquet_bytes(ROWS[5:7]))
    assert read("memory://pool/data/train-*.parquet").fingerprint() != before


def test_remote_errors_name_the_url(memfs: Any) -> None:
    put(memfs, "/pool/bad.jsonl", jsonl_bytes(ROWS[:1]) + b"[1]\n")
    with pytest.raises(InputError) as e:
        read("memory://pool/bad.jsonl").frame()
    assert (e.value.path, e.value.line) == ("memory:///pool/bad.jsonl", 2)
    with pytest.raises(InputError, match="no such file"):
        read("memory://pool/none.jsonl")


@pytest.fixture
def hub_stand_in(memfs: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A local filesystem registered as fsspec's ``hf`` protocol: a Hub dataset in memory."""
    from fsspec.implementations.memory import MemoryFileSystem

    class HubStandIn(MemoryFileSystem):
        protocol = ("hf",)
        store: ClassVar[dict[str, Any]] = {}
        pseudo_dirs: ClassVar[list[str]] = [""]

        @classmethod
        def _strip_protocol(cls, path: str) -> str:
            return str(super()._strip_protocol(path.removeprefix("hf://")))

    registry = importlib.import_module("fsspec.registry")  # (fsspec.registry is a mapping)
    monkeypatch.setitem(registry._registry, "hf", HubStandIn)  # restored after the test
    HubStandIn.clear_instance_cache()
    fs = HubStandIn()
    put(
        fs,
        "/datasets/org/gsm/README.md",
        b"---\nconfigs:\n- config_name: main\n  data_files:\n"
        b"  - split: train\n    path: main/train-*\n  - split: test\n    path: main/test-*\n---\n",
    )
    put(fs, "/datasets/org/gsm/main/train-00000-of-00001.parquet", parquet_bytes(ROWS[:6]))
    put(fs, "/datasets/org/gsm/main/test-00000-of-00001.parquet", parquet_bytes(ROWS[6:]))
    return fs


def test_hub_ids_and_hf_urls(hub_stand_in: Any) -> None:
    with pytest.raises(InputError, match=r"pass format='hf' or hf://datasets/org/gsm"):
        read("org/gsm")
    src = read("org/gsm", format="hf", split="train")
    assert (src.name, src.format, src.uri) == ("gsm-train", "parquet", "hf://datasets/org/gsm")
    assert src.frame().height == 6
    test = read("hf://datasets/org/gsm", split="test")
    assert test.frame()["problem"].to_list() == [r["problem"] for r in ROWS[6:]]
    with pytest.raises(ConfigError, match="pass split="):
        read("hf://datasets/org/gsm")
    one = read("hf://datasets/org/gsm/main/test-00000-of-00001.parquet")
    assert one.frame().height == len(ROWS[6:])


def test_missing_filesystem_package_names_it() -> None:
    pytest.importorskip("fsspec")
    try:
        import s3fs  # noqa: F401

        pytest.skip("s3fs is installed")
    except ImportError:
        pass
    with pytest.raises(MissingExtraError, match=r"s3fs .* pip install 'curate\[s3\]'"):
        read("s3://bucket/pool/*.parquet")
    with pytest.raises(ConfigError, match="no protocol 'nope'"):
        read("nope://x/y.jsonl")


# ---------------------------------------------------------------------------- GSM8K


def test_gsm8k_without_a_mapping() -> None:
    src = read(DATA / "gsm8k_train_head.jsonl")
    df = src.frame()
    assert df["answer"].to_list() == ["72", "10", "5", "42"]
    assert df["solution"][0].startswith("Natalia sold 48/2") and df["solution"][0].endswith("72")
    assert meta(df) == {}  # the answer column is carried whole by solution
    assert df["problem"][0].startswith("Natalia sold clips")


def test_hash_answers_with_a_solution_column_and_below_the_share(tmp_path: Path) -> None:
    rows = [{"question": "q", "answer": "so 2\n#### 2", "solution": "long"}]
    p = tmp_path / "a.jsonl"
    p.write_bytes(jsonl_bytes(rows))
    assert read(p).frame().select("answer", "solution").row(0) == ("2", "long")
    mixed = [{"question": "q", "answer": a} for a in ("x\n#### 1", "7", "8")]
    p.write_bytes(jsonl_bytes(mixed))
    assert read(p).frame()["answer"].to_list() == ["x\n#### 1", "7", "8"]  # not GSM8K's form
    assert read(p, answer="answer").frame()["answer"][1] == "7"  # a mapping is obeyed


# ------------------------------------------------------------------ paths past the end


def test_index_past_the_end_in_every_row_is_an_error(tmp_path: Path) -> None:
    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}]} for i in range(3)]
    p = tmp_path / "chat.jsonl"
    p.write_bytes(b"\n" + jsonl_bytes(rows))
    with pytest.raises(InputError, match=r"prompt has 1 item\(s\), so it has no index 5") as e:
        read(p, problem="prompt.5.content").frame()
    assert (e.value.path, e.value.line, e.value.field) == (str(p), 2, "problem")
    q = tmp_path / "chat.parquet"
    parquet(q, rows)
    with pytest.raises(InputError) as e:
        read(q, problem="prompt.1.content").frame()
    assert (e.value.row, e.value.field) == (0, "problem")
    longer = [*rows[:2], {"prompt": [{"role": "system", "content": "s"}, *rows[2]["prompt"]]}]
    p.write_bytes(jsonl_bytes(longer))  # past the end in some rows only: data, not mapping
    assert read(p, problem="prompt.1.content").frame()["problem"].to_list() == ["", "", "q2"]


# ------------------------------------------------------------------------ limit, sample


def test_limit_reads_the_first_rows(tmp_path: Path) -> None:
    p = tmp_path / "p.jsonl"
    p.write_bytes(jsonl_bytes(ROWS) + b"broken\n")
    head = read(p, limit=4)
    df = head.frame()
    assert df["problem"].to_list() == [r["problem"] for r in ROWS[:4]]  # the bad line unread
    assert repr(head).endswith("limit=4)")
    assert head.fingerprint() != read(p, limit=5).fingerprint() != read(p).fingerprint()
    hub_folder(tmp_path / "pool")
    assert read(tmp_path / "pool", split="train", limit=6).frame().height == 6  # across shards
    with pytest.raises(ConfigError, match="limit=0"):
        read(p, limit=0)


def test_sample_is_deterministic_and_keeps_ids(tmp_path: Path) -> None:
    p = tmp_path / "p.jsonl"
    rows = [{"problem": f"p{i}"} for i in range(200)]
    p.write_bytes(jsonl_bytes(rows))
    full = read(p).frame()["id"].to_list()
    half = read(p, sample=0.5, seed=3).frame()["id"].to_list()
    assert half == read(p, sample=0.5, seed=3).frame()["id"].to_list()
    assert 70 < len(half) < 130 and half == [i for i in full if i in set(half)]  # in order
    assert half != read(p, sample=0.5, seed=4).frame()["id"].to_list()
    ten = read(p, sample=10, seed=3).frame()["id"].to_list()
    assert len(ten) == 10 and ten == [i for i in full if i in set(ten)]
    assert set(read(p, sample=10, seed=3, limit=20).frame()["id"]) <= set(full[:20])
    prints = {read(p, **kw).fingerprint() for kw in ({}, {"sample": 0.5}, {"sample": 10})}  # type: ignore[arg-type]
    assert len(prints) == 3 and read(p, sample=10, seed=1).fingerprint() not in prints
    assert read(p, sample=1e-9).frame().height == 0
    with pytest.raises(ConfigError, match=r"sample=2\.5"):
        read(p, sample=2.5)


# ---------------------------------------------------------------------- level, meta


def test_level_is_a_number_sql_compares(tmp_path: Path) -> None:
    rows = [
        {"problem": "a", "level": "Level 5"},
        {"problem": "b", "level": "Level 10"},
        {"problem": "c", "level": 2.125},
        {"problem": "d", "level": "hard"},
    ]
    p = tmp_path / "l.jsonl"
    p.write_bytes(jsonl_bytes(rows))
    df = read(p).frame()
    assert df["level"].to_list() == [5.0, 10.0, 2.125, None]
    hard = duckdb.sql("SELECT problem FROM df WHERE level >= 4 ORDER BY problem").fetchall()
    assert hard == [("a",), ("b",)]  # as text, 'Level 10' < '4'
    assert meta(df, 3) == {"level": "hard"} and meta(df, 0) == {}


def test_meta_does_not_repeat_a_mapped_nested_column(tmp_path: Path) -> None:
    dapo = {
        "data_source": "math_dapo",
        "prompt": [{"content": "Find $m+n$.", "role": "user"}],
        "ability": "MATH",
        "reward_model": {"ground_truth": "34", "style": "rule-lighteval/MATH_v2"},
        "extra_info": {"index": "a1"},
    }
    p = tmp_path / "dapo.parquet"
    parquet(p, [dapo])
    df = read(p, problem="prompt.0.content", answer="reward_model.ground_truth").frame()
    assert df.select("problem", "answer").row(0) == ("Find $m+n$.", "34")
    assert meta(df) == {
        "data_source": "math_dapo",
        "ability": "MATH",
        "reward_model": {"style": "rule-lighteval/MATH_v2"},
        "extra_info": {"index": "a1"},
    }
