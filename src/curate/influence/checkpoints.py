"""The warm-up's checkpoints as LESS reads them: the LoRA adapter on its base model, the Adam
moments of its optimizer, and the learning rate that weighs it.

A checkpoint is a folder written by transformers' ``Trainer`` (``curate.train.sft`` with
``lora=``): ``adapter_config.json`` and ``adapter_model.safetensors``, ``optimizer.pt``
(AdamW's ``exp_avg`` and ``exp_avg_sq`` per parameter) and ``trainer_state.json`` (the
learning rate logged at each step). ``optimizer.pt`` is read with
``torch.load(weights_only=True)``: tensors and numbers only, never arbitrary objects.
"""

from __future__ import annotations

import json
import pickle  # only for its exception type: nothing is unpickled with it
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import ConfigError, InputError

_STEP = re.compile(r"checkpoint-(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """A warm-up checkpoint and the weight of its scores (LESS: the mean learning rate of
    the steps that led to it since the previous checkpoint)."""

    path: Path
    learning_rate: float

    @property
    def step(self) -> int:
        m = _STEP.search(self.path.name)
        return int(m[1]) if m else 0


def checkpoints(folder: str | Path) -> list[Checkpoint]:
    """The ``checkpoint-N`` folders of a training output folder, by step, each weighted by
    the mean learning rate logged over its steps (``trainer_state.json`` of the last)."""
    folder = Path(folder)
    found = sorted(
        (p for p in folder.glob("checkpoint-*") if p.is_dir() and _STEP.search(p.name)),
        key=lambda p: int(_STEP.search(p.name)[1]),  # type: ignore[index]
    )
    if not found:
        raise ConfigError(
            f"{folder}: no checkpoint-N folders; expected the output of a training run that "
            "saved checkpoints (curate.train.sft(..., save='epoch'))"
        )
    state_path = found[-1] / "trainer_state.json"
    try:
        history = json.loads(state_path.read_text())["log_history"]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"cannot read the learning rates: {e}", path=state_path) from None
    rates = [(int(h["step"]), float(h["learning_rate"])) for h in history if "learning_rate" in h]
    out, previous = [], 0
    for path in found:
        step = int(_STEP.search(path.name)[1])  # type: ignore[index]
        logged = [lr for s, lr in rates if previous < s <= step]
        if not logged:
            raise InputError(
                f"no learning rate logged for steps {previous + 1}-{step}; expected "
                "logging_steps=1 (curate.train logs every step)",
                path=state_path,
            )
        out.append(Checkpoint(path, sum(logged) / len(logged)))
        previous = step
    return out


def load_model(base: str | Path, *, device: Any = None) -> Any:
    """A causal LM in float32 on ``device``, in ``eval()`` mode (no dropout)."""
    import torch
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    return (model.to(device) if device is not None else model).eval()


def load_adapter(base: str | Path, checkpoint: str | Path, *, device: Any = None) -> Any:
    """The base model with the checkpoint's LoRA adapter, trainable (its parameters need
    gradients), in ``eval()`` mode (no dropout), float32."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_model(base), str(checkpoint), is_trainable=True)
    return (model.to(device) if device is not None else model).eval()


def adam_moments(model: Any, checkpoint: str | Path) -> tuple[Any, Any]:
    """``exp_avg`` and ``exp_avg_sq`` of the checkpoint's optimizer, flattened in the order
    of `curate.influence.gradients.trainable_layers` (weight, then bias of each layer).

    transformers' ``Trainer`` numbers the parameters in two groups, those with weight
    decay and those without (biases and norms), each in ``named_parameters`` order; the
    shapes are checked against the model's, so a checkpoint of another model or adapter is
    refused rather than misread.
    """
    import torch
    from transformers import Trainer

    from curate.influence.gradients import trainable_layers

    path = Path(checkpoint) / "optimizer.pt"
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state, groups = saved["state"], saved["param_groups"]
    except (OSError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as e:
        raise InputError(f"cannot read the optimizer state: {e}", path=path) from None
    decay = set(Trainer.get_decay_parameter_names(None, model))  # type: ignore[arg-type]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    order = [n for n, _ in named if n in decay] + [n for n, _ in named if n not in decay]
    ids = [i for g in groups for i in g["params"]]
    if len(ids) != len(order):
        raise InputError(
            f"the optimizer holds {len(ids)} parameters, the model with its adapter trains "
            f"{len(order)}; expected the checkpoint of this model and adapter",
            path=path,
        )
    params = dict(named)
    by_name: dict[str, tuple[Any, Any]] = {}
    for name, i in zip(order, ids, strict=True):
        shape = params[name].shape
        entry = state.get(i)
        if entry is None:  # never stepped: zero moments
            zero = torch.zeros(shape)
            by_name[name] = (zero, zero)
            continue
        if "exp_avg" not in entry or "exp_avg_sq" not in entry:
            raise InputError(
                f"the optimizer state of {name} has no exp_avg/exp_avg_sq: LESS's features "
                "need an Adam optimizer (AdamW, as curate.train uses)",
                path=path,
            )
        if entry["exp_avg"].shape != shape:
            raise InputError(
                f"the optimizer's moment for {name} has shape {tuple(entry['exp_avg'].shape)}, "
                f"the parameter {tuple(shape)}; expected the checkpoint of this model",
                path=path,
            )
        by_name[name] = (entry["exp_avg"].float(), entry["exp_avg_sq"].float())
    modules = dict(model.named_modules())
    name_of = {id(p): n for n, p in named}
    firsts, seconds = [], []
    for layer in trainable_layers(model):
        for tensor in layer.parameters(modules[layer.name]):
            m, v = by_name[name_of[id(tensor)]]
            firsts.append(m.flatten())
            seconds.append(v.flatten())
    return torch.cat(firsts), torch.cat(seconds)
