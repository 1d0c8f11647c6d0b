"""Memory and time of reading a big ``.json`` file: streamed (ijson) against parsed whole
(orjson, as every .json file was read before), and the same rows as ``.jsonl``.

Run from the repository root (``--reader-only``: the format reader without ``curate.read``)::

    PYTHONPATH=src python benchmarks/bench_json_ingest.py [--rows 1000000 3000000]
        [--data ../shared/data] [--tmp DIR]

Rows are resampled (seeded) from the real MATH and AIME training pools of rllm
(``rllm/train/math.json``, ``rllm/train/aime.json``) and written as one JSON array and as
JSON Lines in a temporary folder. Each measurement runs in a fresh subprocess that goes
through ``curate.read(path).batches()`` (what ingest does) and reports its seconds and peak
RSS (``ru_maxrss``). "whole" sets `curate.io.formats.JSON_WHOLE_BYTES` above the file's
size, which is the former reader: all bytes read, then ``orjson.loads``. Prints a markdown
table.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
POOLS = ("rllm/train/math.json", "rllm/train/aime.json")


def child(path: Path, mode: str, level: str) -> None:
    """Read ``path`` once and print seconds, rows and peak RSS (MiB) as JSON: through
    ``curate.read`` (level "read") or the format's reader alone, no canonical table."""
    import curate.io.formats as formats
    from curate.io import read
    from curate.io.files import DataFile

    if mode == "whole":
        formats.JSON_WHOLE_BYTES = path.stat().st_size + 1
    start = time.perf_counter()
    if level == "read":
        rows = sum(frame.height for frame in read(path, source="pool").batches())
    else:
        reader = formats._READERS[path.suffix.lstrip(".")]
        rows = sum(len(records) for records, _ in reader(DataFile(str(path), "", ""), None))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mib": peak}))


def write_files(folder: Path, data: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """``n`` rows resampled from the pools, as a JSON array and as JSON Lines."""
    pool = [r for rel in POOLS for r in orjson.loads((data / rel).read_bytes())]
    rng = random.Random(seed)
    array, lines = folder / f"pool_{n}.json", folder / f"pool_{n}.jsonl"
    with array.open("wb") as a, lines.open("wb") as b:
        a.write(b"[")
        for i in range(n):
            record = orjson.dumps(pool[rng.randrange(len(pool))])
            a.write(b",\n" + record if i else record)
            b.write(record + b"\n")
        a.write(b"]\n")
    return array, lines


def measure(path: Path, mode: str, level: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), mode, level],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the files")
    parser.add_argument(
        "--reader-only", action="store_true", help="time the format reader, not curate.read"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], args.child[2])
        return

    level = "reader" if args.reader_only else "read"
    what = "the format reader alone" if args.reader_only else "curate.read(...).batches()"
    print(
        f"python {platform.python_version()} on {platform.machine()}, one process a run; {what}\n"
    )
    print("| rows | file | MB | reader | seconds | peak RSS MiB |")
    print("|---:|---|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for n in args.rows:
            array, lines = write_files(Path(tmp), args.data, n)
            runs = [(array, "whole"), (array, "stream"), (lines, "stream")]
            for path, mode in runs:
                r = measure(path, mode, level)
                assert r["rows"] == n, r
                reader = {"whole": "orjson, whole file (before)", "stream": "streamed"}[mode]
                print(
                    f"| {n:,} | {path.suffix} | {path.stat().st_size / 1e6:,.0f} | {reader} "
                    f"| {r['seconds']:.1f} | {r['peak_mib']:,.0f} |",
                    flush=True,
                )
            array.unlink()
            lines.unlink()


if __name__ == "__main__":
    main()
