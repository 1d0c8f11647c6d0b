"""Speed and memory of gradient-influence features on a CPU (issue 14).

1. **Gradient features per second**: LESS's training features (per-example LoRA gradients,
   Adam's direction, a projection to ``--dim`` numbers, L2-normalised: dense Rademacher,
   kept or made block by block per batch, or the subsampled randomised Hadamard) through
   `curate.influence.features`, for the toy model (`curate.toy`, 0.33M parameters) and for
   a ~110M-parameter Qwen2 built locally with random weights (hidden 768, 12 layers, MLP
   2048, vocabulary 32,000; nothing is downloaded). LoRA rank ``--rank`` on q/k/v/o. The
   peak resident memory of each measurement is read from the process (each runs in a
   child process of its own).
2. **Re-selection from the cache**: `curate.InfluenceSelect` over ``--rows`` toy problems
   (``method="embedding"``, the model's hidden states), then the same with another budget:
   the second run only ranks the cached scores again.

Run from the repository root::

    .venv/bin/python benchmarks/bench_influence_speed.py [--rows 10000] [--dim 8192]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _random_qwen(folder: Path) -> Path:
    """A ~110M-parameter Qwen2 with random weights and the toy's tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from curate.toy import toy_model

    tok = AutoTokenizer.from_pretrained(toy_model(steps=300))
    config = Qwen2Config(
        vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
        num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=512,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _features(kind: str, projector: str, n: int, rank: int, dim: int, batch: int, out: Any) -> None:
    """In a child process: features of ``n`` toy examples; reports rate and peak memory."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate.influence.features import Example, features, gradient_compute
    from curate.influence.gradients import gradient_dim
    from curate.influence.projection import HadamardProjection, RademacherProjection
    from curate.toy import toy_model, toy_problems

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    folder = toy_model(steps=300) if kind == "toy" else _random_qwen(Path(tempfile.mkdtemp()))
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    lora = LoraConfig(r=rank, lora_alpha=4 * rank, lora_dropout=0.0,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])  # fmt: skip
    model = get_peft_model(base, lora).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    d = gradient_dim(model)
    projection: Any = (
        HadamardProjection(d, dim, seed=0)
        if projector == "hadamard"
        else RademacherProjection(d, dim, seed=0, cache=d * dim * 4 <= 2**31)
    )
    moments = (torch.zeros(d), torch.full((d,), 1e-6))
    rows = toy_problems(n, seed=7)
    examples = [Example(r["problem"], r["solution"]) for r in rows]
    compute = gradient_compute(model, projection, moments)
    features(examples[:batch], compute, tok, batch_size=batch, max_length=96)  # warm up
    start = time.perf_counter()
    features(examples, compute, tok, batch_size=batch, max_length=96)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    params = sum(p.numel() for p in base.parameters())
    out.put({"kind": kind, "params": params, "gradient_dim": d, "rows": n, "seconds": seconds,
             "rows_per_s": n / seconds, "peak_gib": peak,
             "projection": projector if projector == "hadamard" else
             f"rademacher, {'kept' if projection.cache else 'made per batch'}"})  # fmt: skip


def measure_features(
    kind: str, projector: str, n: int, rank: int, dim: int, batch: int
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_features, args=(kind, projector, n, rank, dim, batch, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


def measure_reselect(rows: int, out: Path) -> dict[str, Any]:
    import curate
    from curate.toy import toy_model, toy_problems

    model = str(toy_model(steps=300))
    pool = toy_problems(rows, seed=21)
    target = toy_problems(16, seed=22, levels=[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    (out / "target.jsonl").write_text("".join(json.dumps(r) + "\n" for r in target))
    source = curate.read(out / "pool.jsonl", source="toy")
    times = {}
    for budget in (0.1, 0.05):
        stage = curate.InfluenceSelect(
            model=model, target=str(out / "target.jsonl"), budget=budget, method="embedding"
        )
        run = curate.Recipe("reselect", [source], [stage]).run(out / "run", progress=False)
        times[str(budget)] = run.stages[-1].seconds
    return {"rows": rows, "first_s": times["0.1"], "reselect_s": times["0.05"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows for the re-selection")
    parser.add_argument("--dim", type=int, default=8192)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--toy-rows", type=int, default=512)
    parser.add_argument("--big-rows", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_influence_speed")
    args = parser.parse_args()
    import torch

    print(
        f"bench_influence_speed: {platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, LoRA rank {args.rank} on q/k/v/o, projection to {args.dim}"
    )
    cases = [
        ("toy", "rademacher", args.toy_rows), ("toy", "hadamard", args.toy_rows),
        ("110m", "rademacher", args.big_rows), ("110m", "hadamard", args.big_rows),
    ]  # fmt: skip
    for kind, projector, n in cases:
        r = measure_features(kind, projector, n, args.rank, args.dim, 16)
        print(f"features {kind}: {r['params'] / 1e6:.1f}M parameters, gradient dim "
              f"{r['gradient_dim']:,}, {r['rows']} rows in {r['seconds']:.1f} s = "
              f"{r['rows_per_s']:.1f} rows/s, peak {r['peak_gib']:.2f} GiB, projection "
              f"{r['projection']}")  # fmt: skip
    r = measure_reselect(args.rows, args.out)
    print(f"re-selection: {r['rows']:,} rows, first run {r['first_s']:.1f} s, another budget "
          f"{r['reselect_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
