"""A sentence-transformers model converted for onnxruntime or OpenVINO (CPU).

`convert` exports a local sentence-transformers model (transformer, pooling and
normalisation in one graph) with ``torch.onnx.export``. For ``onnx`` it then fuses
attention, layer norms and GELUs with onnxruntime's transformer optimizer, for
``onnx-int8`` also quantises the weights of its matrix products per channel
(``onnxruntime.quantization.quantize_dynamic``), and for ``openvino`` it converts
the graph to OpenVINO's format with float32 weights (``openvino.save_model``; the
precision it computes in is chosen when it is loaded). The folder it writes holds
the model, the model's ``tokenizer.json`` and ``curate.json``; it is built beside
its final place and renamed into it, so a killed conversion leaves nothing
half-made. torch is needed only to convert; `OnnxEncoder` runs with onnxruntime or
openvino, tokenizers and numpy alone.

Import cost: nothing heavy until a function is called.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from curate.errors import ConfigError, MissingExtraError
from curate.io import write_json

FORMAT = 1  # bump when the conversion changes: the folder (and the vectors' key) change with it
OPSET = 17


def _module(name: str, package: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingExtraError(package, "embed") from None


Kind = Literal["onnx", "onnx-int8", "openvino"]


def convert(source: Path, dest: Path, kind: Kind) -> Path:
    """Convert the sentence-transformers model in ``source`` into ``dest`` (if not there yet).

    Deterministic: the same model and library versions give the same weights and
    graph, byte for byte (OpenVINO numbers its nodes per process: the first
    conversion in a process always gives the same file).
    """
    if (dest / "curate.json").is_file():
        return dest
    _module("openvino" if kind == "openvino" else "onnxruntime", kind.split("-")[0])
    _module("onnx", "onnx")
    torch = _module("torch", "torch")
    st = _module("sentence_transformers", "sentence-transformers")
    if not (source / "tokenizer.json").is_file():
        raise ConfigError(f"model {source}: no tokenizer.json, so it cannot run as {kind!r}")
    # onnxruntime's optimizer fuses the attention of the eager pattern, OpenVINO both
    eager = {} if kind == "openvino" else {"attn_implementation": "eager"}
    model = st.SentenceTransformer(
        str(source), device="cpu", local_files_only=True, model_kwargs=eager
    ).eval()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        raw = work / "raw.onnx"
        _export(torch, model, raw)
        if kind == "openvino":
            ov = _module("openvino", "openvino")
            ov.save_model(ov.convert_model(raw), work / "model.xml", compress_to_fp16=False)
        else:
            config = model[0].auto_model.config
            heads = int(getattr(config, "num_attention_heads", 0))
            hidden = int(getattr(config, "hidden_size", 0))
            fused = _optimize(raw, work / "fused.onnx", heads, hidden)
            if kind == "onnx-int8":
                _quantize(fused, work / "model.onnx")
            else:
                fused.rename(work / "model.onnx")
        for p in work.glob("*.onnx*"):
            if p.name != "model.onnx":
                p.unlink()
        shutil.copyfile(source / "tokenizer.json", work / "tokenizer.json")
        write_json(
            {
                "format": FORMAT,
                "max_seq_length": int(model.max_seq_length),
                "dim": int(model.get_embedding_dimension()),
                "kind": kind,
            },
            work / "curate.json",
        )
        try:
            work.rename(dest)
        except OSError:  # another process finished first: keep its folder
            if not (dest / "curate.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _export(torch: Any, model: Any, path: Path) -> None:
    class Graph(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.model({"input_ids": input_ids, "attention_mask": attention_mask})
            return out["sentence_embedding"]

    batch = model.tokenizer(["a b c d", "a b"], padding=True, return_tensors="pt")
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes taken as constants
        torch.onnx.export(
            Graph().eval(),
            (batch["input_ids"], batch["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _optimize(raw: Path, out: Path, heads: int, hidden: int) -> Path:
    optimizer = importlib.import_module("onnxruntime.transformers.optimizer")
    model = optimizer.optimize_model(
        str(raw), model_type="bert", num_heads=heads, hidden_size=hidden
    )
    model.save_model_to_file(str(out))
    return out


def _quantize(fused: Path, out: Path) -> None:
    q = importlib.import_module("onnxruntime.quantization")
    q.quantize_dynamic(
        str(fused),
        str(out),
        weight_type=q.QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={"DefaultTensorType": 1},  # float: fused ops have no inferred type
    )


class OnnxEncoder:
    """Encodes texts with a folder made by `convert`, on ``threads`` CPU threads.

    An ``openvino`` folder computes in ``precision`` (``"bf16"``: bfloat16 where the
    CPU has it, else float32); onnxruntime ones as they were converted.
    """

    def __init__(self, folder: Path, threads: int, precision: str = "f32") -> None:
        tokenizers = _module("tokenizers", "tokenizers")
        meta = json.loads((folder / "curate.json").read_text())
        self.dim = int(meta["dim"])
        self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(int(meta["max_seq_length"]))
        if meta["kind"] == "openvino":
            ov = _module("openvino", "openvino")
            config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
            compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU", config)
            request, output = compiled.create_infer_request(), compiled.output(0)
            self.run: Callable[[dict[str, np.ndarray]], np.ndarray] = lambda feed: request.infer(
                feed
            )[output]
            return
        ort = _module("onnxruntime", "onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False  # shapes vary by batch: an arena only grows
        session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.run = lambda feed: session.run(None, feed)[0]

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """L2-normalised float32 vectors, batched by token count (little padding)."""
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1
            out[rows] = self.run({"input_ids": input_ids, "attention_mask": mask})
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


@functools.lru_cache(maxsize=4)
def encoder(folder: str, threads: int, precision: str = "f32") -> OnnxEncoder:
    """The `OnnxEncoder` of ``folder`` (one per process, thread count and precision)."""
    return OnnxEncoder(Path(folder), threads, precision)


def cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
