"""What the Ray engine costs on one machine, and a run on a two-node Ray cluster.

The same recipe (ingest, ``RequireGradable``, ``ExactDedup``, ``MinHashDedup``,
``Decontaminate``) over the same pool, run three ways, each in a fresh process:

- ``local``: ``Recipe.run(engine="local")``;
- ``ray``: ``Recipe.run(engine="ray")``, which starts a local Ray cluster (the start is
  part of the time, and shown apart);
- ``two-node``: a head and a worker started with ``ray start`` on this machine (one CPU
  each: two Ray nodes, as on two machines), joined with ``address=`` (the commands are
  printed; the README has them for a real cluster).

Every stage's kept and rejects Parquet must be byte-identical to ``local``'s (checked).
The pool is ``bench_stream.py``'s (its cache under ``--data-dir``)::

    .venv/bin/python benchmarks/bench_ray.py [--rows 200000] [--data-dir /tmp/curate-bench-stream]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PORT = 6391

CHILD = """
import json, sys, time
import curate
pool, out, engine, address = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None
stages = [curate.RequireGradable(), curate.ExactDedup(), curate.MinHashDedup(),
          curate.Decontaminate(benchmarks="all")]
recipe = curate.Recipe("bench", [curate.read(pool, source="pool")], stages)
started = time.perf_counter()
connect = 0.0
if engine == "ray":
    import ray
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    connect = time.perf_counter() - started
    nodes = sum(1 for n in ray.nodes() if n["Alive"])
else:
    nodes = 0
run = recipe.run(out, progress=False, engine=engine, force=True)
total = time.perf_counter() - started
stages = {s["name"]: s["seconds"] for s in run.manifest["stages"]}
print(json.dumps({"total": total, "connect": connect, "nodes": nodes, "stages": stages}))
"""


def _child(pool: Path, out: Path, engine: str, address: str = "") -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(pool), str(out), engine, address],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"{engine} failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _same(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in (a / "stages").rglob("*.parquet"))
    other = sorted(p.relative_to(b) for p in (b / "stages").rglob("*.parquet"))
    return files == other and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def _ray(*args: str) -> str:
    ray = str(Path(sys.executable).with_name("ray"))
    print("$ ray " + " ".join(args), flush=True)
    done = subprocess.run([ray, *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"ray {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/curate-bench-stream"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/curate-bench-ray"))
    args = parser.parse_args()
    pool = args.data_dir / f"pool-v1-{args.rows}.parquet"
    if not pool.exists():
        subprocess.run(
            [sys.executable, str(HERE / "bench_stream.py"), "--rows", str(args.rows),
             "--data-dir", str(args.data_dir), "--stages", "exact"],
            check=True,
        )  # fmt: skip
    results = {}
    for engine in ("local", "ray"):
        results[engine] = _child(pool, args.work / engine, engine)
    # Ray 2.60 here refused the second node (InvalidAuthToken) unless every process ran
    # with token authentication and one token (~/.ray/auth_token): as on a real cluster
    os.environ["RAY_AUTH_MODE"] = "token"
    if not (Path.home() / ".ray" / "auth_token").exists():
        _ray("get-auth-token", "--generate")
    head = _ray("start", "--head", f"--port={PORT}", "--num-cpus=1", "--include-dashboard=false")
    try:
        found = re.search(r"ray start --address='([^']+)'", head)
        address = found.group(1) if found else f"127.0.0.1:{PORT}"
        _ray("start", f"--address={address}", "--num-cpus=1")
        time.sleep(3)
        results["two-node"] = _child(pool, args.work / "two-node", "ray", address)
    finally:
        _ray("stop", "--force")
    names = list(results["local"]["stages"])  # type: ignore[call-overload]
    print(f"\n{args.rows:,} rows; identical to local: ", end="")
    print({k: _same(args.work / "local", args.work / k) for k in ("ray", "two-node")})
    print(
        "\n| engine | nodes | " + " | ".join(f"{n} s" for n in names) + " | connect s | total s |"
    )
    print("|---|---:|" + "---:|" * (len(names) + 2))
    for engine, r in results.items():
        per = r["stages"]
        cells = " | ".join(f"{per[n]:.2f}" for n in names)  # type: ignore[index]
        print(f"| {engine} | {r['nodes']} | {cells} | {r['connect']:.1f} | {r['total']:.1f} |")


if __name__ == "__main__":
    main()
