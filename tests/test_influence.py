"""Gradient-influence parts: per-example gradients, the projection, Adam's direction, scores."""

from __future__ import annotations

import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from curate.errors import ConfigError  # noqa: E402
from curate.influence import (  # noqa: E402
    HadamardProjection,
    RademacherProjection,
    adam_direction,
    gradient_dim,
    influence,
    per_example_gradients,
    trainable_layers,
)


def _lora_model(seed: int = 0, *, bias: str = "none") -> Any:
    """A tiny random Qwen2 with LoRA on q/k/v/o, lora_B drawn at random (peft starts it at 0,
    which would make lora_A's gradients 0 and the test blind to them)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    config._attn_implementation = "eager"
    base = Qwen2ForCausalLM(config)
    lora = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.1, bias=bias,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )  # fmt: skip
    model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return model.eval()


def _batch(seed: int = 1) -> tuple[list[list[int]], list[list[int]]]:
    """Examples of different lengths: token ids, and labels with the prompt part -100."""
    g = torch.Generator().manual_seed(seed)
    ids, labels = [], []
    for length, prompt in ((9, 3), (5, 2), (12, 7), (7, 7)):  # the last has no labelled token
        seq = torch.randint(1, 50, (length,), generator=g).tolist()
        ids.append(seq)
        labels.append([-100] * prompt + seq[prompt:])
    return ids, labels


def _padded(ids: list[list[int]], labels: list[list[int]]) -> tuple[Any, Any, Any]:
    width = max(map(len, ids))
    x = torch.zeros(len(ids), width, dtype=torch.long)
    mask = torch.zeros(len(ids), width, dtype=torch.long)
    y = torch.full((len(ids), width), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(ids, labels, strict=True)):
        x[i, : len(s)], mask[i, : len(s)], y[i, : len(s)] = (
            torch.tensor(s), 1, torch.tensor(lab),
        )  # fmt: skip
    return x, mask, y


def _loop_gradients(model: Any, ids: list[list[int]], labels: list[list[int]]) -> Any:
    """One backward per example, unpadded: the gradient of its mean token loss with respect
    to every trainable linear layer, flattened in `trainable_layers` order."""
    modules = dict(model.named_modules())
    rows = []
    for s, lab in zip(ids, labels, strict=True):
        model.zero_grad(set_to_none=True)
        x, y = torch.tensor([s]), torch.tensor([lab])
        if (y[:, 1:] != -100).any():
            model(input_ids=x, labels=y).loss.backward()
        parts = []
        for layer in trainable_layers(model):
            m = modules[layer.name]
            for p in layer.parameters(m):
                parts.append(torch.zeros(p.numel()) if p.grad is None else p.grad.flatten())
        rows.append(torch.cat(parts))
    model.zero_grad(set_to_none=True)
    return torch.stack(rows)


@pytest.mark.parametrize("bias", ["none", "lora_only"])
def test_batched_per_example_gradients_equal_a_backward_per_example(bias: str) -> None:
    model = _lora_model(bias=bias)
    ids, labels = _batch()
    x, mask, y = _padded(ids, labels)
    feats, losses = per_example_gradients(model, x, mask, y)
    expected = _loop_gradients(model, ids, labels)
    assert feats.shape == (4, gradient_dim(model)) == expected.shape
    assert torch.allclose(feats, expected, rtol=1e-4, atol=1e-6)
    assert feats[:3].abs().sum(dim=1).min() > 0 and feats[3].abs().sum() == 0
    assert losses.shape == (4,) and losses[3] == 0
    # nothing left in .grad
    assert all(p.grad is None for p in model.parameters())
    # the LoRA parameters: lora_A and lora_B of 4 modules in 2 layers (and with bias="lora_only"
    # the biases of the adapted layers that have one: Qwen2's q, k and v)
    lora = [lay.name for lay in trainable_layers(model) if ".lora_" in lay.name]
    biases = [lay for lay in trainable_layers(model) if ".lora_" not in lay.name]
    assert len(lora) == 16 and all(lay.bias and not lay.weight for lay in biases)
    assert len(biases) == (6 if bias == "lora_only" else 0)


def test_other_trainable_parameters_are_refused() -> None:
    model = _lora_model()
    model.get_input_embeddings().weight.requires_grad_(True)
    with pytest.raises(ConfigError, match="embed_tokens"):
        trainable_layers(model)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable linear layer"):
        trainable_layers(model)


@pytest.mark.parametrize("kind", ["rademacher", "hadamard"])
def test_projection_keeps_inner_products_within_the_jl_bound(kind: str) -> None:
    n, dim, k = 20, 3000, 2048
    x = torch.nn.functional.normalize(
        torch.randn(n, dim, generator=torch.Generator().manual_seed(3))
    )
    make = RademacherProjection if kind == "rademacher" else HadamardProjection
    px = make(dim, k, seed=7)(x)
    # Johnson-Lindenstrauss: k >= 4 ln(n) / (eps^2/2 - eps^3/3) keeps every pairwise inner
    # product of unit vectors within eps (with high probability; the seed is fixed)
    eps = next(
        e
        for e in (i / 1000 for i in range(1, 1000))
        if k * (e**2 / 2 - e**3 / 3) >= 4 * math.log(n)
    )
    error = (px @ px.T - x @ x.T).abs().max()
    assert error <= eps, (float(error), eps)
    assert eps < 0.15


def test_projection_is_the_same_matrix_however_it_is_made() -> None:
    x = torch.randn(5, 1000)
    ref = RademacherProjection(1000, 64, seed=1)
    out = ref(x)
    for kw in ({"block_rows": 256}, {"block_rows": 300}, {"cache": True}, {"block_rows": 10**6}):
        p = RademacherProjection(1000, 64, seed=1, **kw)
        assert torch.allclose(p(x), out, atol=1e-5), kw
        assert torch.allclose(p(x), out, atol=1e-5), kw  # the cached blocks again
    assert not torch.allclose(RademacherProjection(1000, 64, seed=2)(x), out)
    block = ref.block(0)
    assert set((block * math.sqrt(64)).round().unique().tolist()) == {-1.0, 1.0}
    with pytest.raises(ConfigError, match=r"\(n, 1000\)"):
        ref(torch.randn(2, 999))


def test_hadamard_projection_is_seeded_and_checks_its_input() -> None:
    from curate.influence.projection import _sample_without_replacement

    x = torch.randn(3, 5000)
    a, b = HadamardProjection(5000, 256, seed=1), HadamardProjection(5000, 256, seed=1)
    assert torch.equal(a(x), b(x)) and a.n == 8192
    assert not torch.allclose(a(x), HadamardProjection(5000, 256, seed=2)(x))
    assert torch.allclose(a(x[:1]), a(x)[:1], atol=1e-5)  # a row's result is its own
    for n, k in ((1 << 20, 300), (64, 60)):
        drawn = _sample_without_replacement(n, k, torch.Generator().manual_seed(0))
        assert drawn.numel() == k == drawn.unique().numel() and int(drawn.max()) < n
    with pytest.raises(ConfigError, match=r"\(n, 5000\)"):
        a(torch.randn(2, 10))


def test_adam_direction_is_less_formula() -> None:
    g = torch.randn(3, 10)
    m, v = torch.randn(10), torch.rand(10)
    got = adam_direction(g, m, v)
    for i in range(3):
        for j in range(10):
            m1 = 0.9 * m[j] + 0.1 * g[i, j]
            v1 = 0.999 * v[j] + 0.001 * g[i, j] ** 2
            assert math.isclose(got[i, j], m1 / math.sqrt(v1 + 1e-8), rel_tol=1e-5)
    with pytest.raises(ConfigError, match="one moment per gradient dimension"):
        adam_direction(g, torch.zeros(9), torch.zeros(9))


def test_influence_matches_the_definition() -> None:
    gen = torch.Generator().manual_seed(0)
    train = [torch.randn(6, 8, generator=gen) for _ in range(2)]
    targets = [
        {"a": torch.randn(3, 8, generator=gen), "b": torch.randn(2, 8, generator=gen)}
        for _ in range(2)
    ]
    lrs = [2e-5, 1e-5]
    scores, which = influence(train, targets, lrs)
    cos = torch.nn.functional.cosine_similarity
    for i in range(6):
        per = {
            s: sum(
                lr * float(torch.stack([cos(train[c][i], t, dim=0) for t in targets[c][s]]).mean())
                for c, lr in enumerate(lrs)
            )
            for s in ("a", "b")
        }
        best = max(per, key=lambda s: per[s])
        assert math.isclose(float(scores[i]), per[best], rel_tol=1e-5)
        assert which[i] == best
    with pytest.raises(ConfigError, match="one of each per checkpoint"):
        influence(train, targets, [1.0])


def _sft_export(tmp_path: Any, rows: list[dict[str, str]]) -> Any:
    import json

    import curate

    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = curate.Recipe("warm", [curate.read(tmp_path / "p.jsonl", source="toy")]).run(
        tmp_path / "run", progress=False
    )
    return curate.export_run(
        run, tmp_path / "sft", format="sft", template="{problem}", completions="solutions"
    ).out


def test_warmup_checkpoints_adam_moments_and_cached_features(toy_dir: Any, tmp_path: Any) -> None:
    """A LoRA warm-up with a checkpoint per epoch (`curate.train.sft(save="epoch")`); its
    checkpoints, their learning rates and Adam moments as the Trainer numbers them; features
    that do not depend on batch or order, and come back from the cache without a model."""
    pytest.importorskip("trl")
    import numpy as np
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    from curate.embed import VectorCache
    from curate.influence.checkpoints import adam_moments, checkpoints, load_adapter
    from curate.influence.features import Example, features, gradient_compute, hidden_compute
    from curate.toy import toy_problems
    from curate.train import sft

    rows = toy_problems(16, seed=5, levels=[1])
    lora = {"r": 4, "lora_alpha": 16, "lora_dropout": 0.0,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}  # fmt: skip
    out = tmp_path / "warm"
    sft(_sft_export(tmp_path, rows), toy_dir, out, lora=lora, save="epoch", epochs=2,
        global_batch=8, micro_batch=8, max_length=96, learning_rate=1e-3, packing=False,
        threads=1, progress=False)  # fmt: skip
    found = checkpoints(out)
    assert [c.step for c in found] == [2, 4]
    assert all(c.learning_rate > 0 for c in found)
    model = load_adapter(toy_dir, found[-1].path)
    m, v = adam_moments(model, found[-1].path)
    dim = gradient_dim(model)
    assert m.shape == v.shape == (dim,) and bool((v >= 0).all()) and float(v.sum()) > 0
    # the same moments through a Trainer's own optimizer numbering (object identity)
    args = TrainingArguments(output_dir=str(tmp_path / "t"), report_to="none", weight_decay=0.1)
    optimizer = Trainer(model=model, args=args).create_optimizer()
    saved = torch.load(found[-1].path / "optimizer.pt", weights_only=True)
    index = [i for g in saved["param_groups"] for i in g["params"]]
    live = [p for g in optimizer.param_groups for p in g["params"]]
    of = {id(p): i for p, i in zip(live, index, strict=True)}
    modules = dict(model.named_modules())
    expected = torch.cat(
        [saved["state"][of[id(modules[layer.name].weight)]]["exp_avg"].flatten()
         for layer in trainable_layers(model)]
    )  # fmt: skip
    assert torch.equal(m, expected)
    # features: Adam-aware gradients, projected; the same whatever the batch and the order
    tok = AutoTokenizer.from_pretrained(toy_dir)
    examples = [Example(r["problem"], r["solution"]) for r in rows[:5]]
    projection = RademacherProjection(dim, 64, seed=0)
    compute = gradient_compute(model, projection, (m, v))
    cache = VectorCache(tmp_path / "cache")
    first = features(examples, compute, tok, cache=cache, batch_size=2)
    assert first.shape == (5, 64)
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    again = features(examples[::-1], compute, tok, batch_size=3)
    assert np.allclose(again[::-1], first, atol=1e-5)

    def boom(*_: Any) -> Any:
        raise AssertionError("computed again")

    assert np.array_equal(features(examples, boom, tok, cache=cache), first)
    # an example whose prompt fills the length limit has no gradient: a zero feature, not
    # Adam's momentum direction
    cut = features(examples[:2], compute, tok, max_length=8)
    assert np.array_equal(cut, np.zeros_like(cut))
    # RDS+'s features: mean-pooled hidden states, unit rows
    hidden = features(examples, hidden_compute(model), tok, batch_size=2)
    assert hidden.shape == (5, 32 * 4) and np.allclose(np.linalg.norm(hidden, axis=1), 1)
