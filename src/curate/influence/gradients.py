"""Per-example gradients of a model's trainable linear layers, a whole batch in one backward.

LESS computes one backward pass per example. For a linear layer ``y = x W^T (+ b)`` the
gradient of a sum of per-example losses is a sum over examples of ``g_i^T x_i`` (``g``: the
gradient at the layer's output, ``x``: its input, both ``(tokens, features)`` per example),
so one forward and one backward of the batch give every example's gradient: keep each
layer's input in the forward pass, take the gradient at its output with
``torch.autograd.grad``, and contract them per example. LoRA's trainable parameters are the
weights of its ``lora_A`` and ``lora_B`` linear layers, so this covers a peft model whole;
any other trainable parameter is refused by name.

The loss of an example is the mean cross-entropy over its labelled tokens (labels ``-100``
are not scored), as in LESS, where each example is its own batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from curate.errors import ConfigError


@dataclass(frozen=True)
class Layer:
    """A linear layer with a trainable weight or bias: its name in the model, its sizes, and
    which of the two train (a peft adapter with ``bias="all"`` trains a frozen layer's bias)."""

    name: str
    out_features: int
    in_features: int
    weight: bool
    bias: bool

    @property
    def size(self) -> int:
        return self.out_features * self.in_features * self.weight + self.out_features * self.bias

    def parameters(self, module: Any) -> list[Any]:
        """The layer's trainable tensors in ``module``, in the features' order: weight, bias."""
        return [module.weight] * self.weight + [module.bias] * self.bias


def trainable_layers(model: Any) -> list[Layer]:
    """The linear layers whose weights are trainable, in the model's module order: the
    order of the gradient features' dimensions.

    Raises `ConfigError` naming any trainable parameter outside a linear layer (an
    embedding, a norm): its per-example gradient is not computed here.
    """
    import torch

    layers, covered = [], set()
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        weight = module.weight.requires_grad
        bias = module.bias is not None and module.bias.requires_grad
        if weight or bias:
            layers.append(Layer(name, module.out_features, module.in_features, weight, bias))
            covered |= {id(module.weight)} if weight else set()
            covered |= {id(module.bias)} if bias else set()
    other = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
    if other:
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        raise ConfigError(
            f"per-example gradients: trainable parameters outside a linear layer: {shown}; "
            "expected only linear layers to train (LoRA's lora_A/lora_B are): freeze the rest"
        )
    if not layers:
        raise ConfigError(
            "per-example gradients: the model has no trainable linear layer; expected LoRA "
            "adapters (peft) or linear layers with requires_grad"
        )
    return layers


def gradient_dim(model: Any) -> int:
    """How many numbers one example's gradient has: the trainable linear layers' sizes."""
    return sum(layer.size for layer in trainable_layers(model))


@contextmanager
def _capture(model: Any, layers: list[Layer]) -> Iterator[dict[str, tuple[Any, Any]]]:
    """Each listed layer's (input, output) of the next forward pass, kept in a dict."""
    seen: dict[str, tuple[Any, Any]] = {}
    modules = dict(model.named_modules())
    handles = []
    for layer in layers:

        def hook(module: Any, args: tuple[Any, ...], out: Any, name: str = layer.name) -> None:
            seen[name] = (args[0], out)

        handles.append(modules[layer.name].register_forward_hook(hook))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def example_losses(logits: Any, labels: Any) -> Any:
    """Each example's mean cross-entropy over its labelled tokens (next-token shift; labels
    ``-100`` not scored); an example with no labelled token has loss 0."""
    import torch

    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    token = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=-100,
        reduction="none",
    ).view(shift_labels.shape)
    counts = (shift_labels != -100).sum(dim=1)
    return token.sum(dim=1) / counts.clamp(min=1)


def per_example_gradients(
    model: Any, input_ids: Any, attention_mask: Any, labels: Any, *, dtype: Any = None
) -> tuple[Any, Any]:
    """The gradient of each example's loss with respect to the trainable linear layers'
    parameters, flattened in `trainable_layers` order: ``(batch, gradient_dim)``; and the
    examples' losses ``(batch,)``.

    One forward and one backward for the whole batch; the model's parameter ``.grad`` are
    left untouched. Run it with the model in ``eval()`` mode for features that do not depend
    on dropout. ``dtype`` is the features' dtype (float32 by default).
    """
    import torch

    layers = trainable_layers(model)
    with torch.enable_grad(), _capture(model, layers) as seen:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        losses = example_losses(logits, labels)
        missing = [layer.name for layer in layers if layer.name not in seen]
        if missing:
            raise ConfigError(
                f"per-example gradients: layers not used by the forward pass: {missing[:5]}"
            )
        outputs = [seen[layer.name][1] for layer in layers]
        grads = torch.autograd.grad(losses.sum(), outputs, allow_unused=True)
    dtype = dtype or torch.float32
    parts = []
    for layer, grad in zip(layers, grads, strict=True):
        x = seen[layer.name][0].detach()
        if grad is None:  # an output not reaching the loss: zero gradient
            parts.append(torch.zeros(len(input_ids), layer.size, dtype=dtype, device=x.device))
            continue
        g = grad.detach().to(dtype)
        g = g.reshape(g.size(0), -1, g.size(-1))  # (batch, tokens, out)
        if layer.weight:
            x = x.to(dtype).reshape(x.size(0), -1, x.size(-1))
            parts.append(torch.einsum("bto,bti->boi", g, x).reshape(g.size(0), -1))
        if layer.bias:
            parts.append(g.sum(dim=1))
    return torch.cat(parts, dim=1), losses.detach()
