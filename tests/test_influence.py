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
            for p in [m.weight] * layer.weight + [m.bias] * layer.bias:
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


def test_projection_keeps_inner_products_within_the_jl_bound() -> None:
    n, dim, k = 20, 3000, 2048
    x = torch.nn.functional.normalize(
        torch.randn(n, dim, generator=torch.Generator().manual_seed(3))
    )
    px = RademacherProjection(dim, k, seed=7)(x)
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
