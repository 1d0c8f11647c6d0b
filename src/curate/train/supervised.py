"""Supervised fine-tuning on an ``sft`` or ``trl`` export, with TRL's ``SFTTrainer``.

The conversation of each row is split into its prompt (every message but the last) and its
completion (the last, the assistant's), and the loss is on the completion only
(``completion_only_loss``), which needs no special chat template. Every option of the
preset is set on ``SFTConfig`` explicitly.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from curate._torch import torch_threads
from curate.errors import ConfigError
from curate.train import data as train_data
from curate.train import session
from curate.train.presets import SFTPreset
from curate.train.presets import resolve as resolve_preset


def sft(
    data: str | Path,
    model: str | Path,
    out: str | Path,
    *,
    preset: str | SFTPreset = "deepdistill-stage1",
    max_steps: int | None = None,
    seed: int = 0,
    lora: bool | dict[str, Any] = False,
    precision: session.Precision = "auto",
    chat_template: str | None = None,
    save_steps: int | None = None,
    save: Literal["steps", "epoch"] = "steps",
    threads: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    report_to: str = "none",
    **overrides: Any,
) -> session.TrainResult:
    r"""Fine-tune ``model`` on export ``data`` (or a run directory) into ``out``.

    ``preset`` is a name (``deepdistill-stage1``, ``deepdistill-stage2``) or an `SFTPreset`;
    ``overrides`` change its fields (``learning_rate=``, ``epochs=``, ``global_batch=``,
    ``micro_batch=``, ``max_length=``, ``packing=``, ...). ``max_steps`` stops early (a
    smoke test). ``lora=True`` trains a LoRA adapter (merged into ``out/model`` at the end).
    Checkpoints go to ``out/checkpoint-N`` every ``save_steps`` steps (500), the last two
    kept; ``save="epoch"`` keeps one at the end of every epoch instead, all of them (LESS's
    warm-up: `curate.influence.checkpoints` reads them).
    The same call again resumes from the last checkpoint, or returns at once when done.

    >>> sft("missing-export", "m", "out", preset="deepscaler")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: preset 'deepscaler' is not a sft preset; expected one of: [...]
    """
    spec: SFTPreset = resolve_preset(preset, "sft", overrides)
    session.require_train_extra()
    out = Path(out)
    model = str(model)
    session.check_model(model, chat_template=chat_template, trainer="sft")
    per_pass = spec.micro_batch * session.world_size()
    if spec.global_batch % per_pass:
        raise ConfigError(
            f"{spec.name}: global_batch={spec.global_batch} is not a multiple of micro_batch x "
            f"devices = {per_pass}; change global_batch or micro_batch"
        )
    session.prepare(out, overwrite=overwrite)
    resolved = train_data.resolve(data, "sft", out)
    settings: dict[str, Any] = {
        "kind": "sft",
        "preset": asdict(spec),
        "model": model,
        "data": resolved.describe(),
        "seed": seed,
        "lora": lora,
        "max_steps": max_steps,
        "chat_template": chat_template,
        **({"save": save} if save != "steps" else {}),
    }
    settings["fingerprint"] = session.fingerprint(settings)
    state = session.begin(out, settings)
    if state is not None and state.get("status") == "done":
        return session.TrainResult(
            out, out / session.MODEL_DIR, int(state.get("steps", 0)), skipped=True
        )
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    packing, init = _packing(spec)
    with session.quiet_datasets(progress):
        dataset = _conversations(train_data.load(resolved, "sft"), resolved.format)
    first = dataset[0]
    session.check_template_keeps(model, chat_template, first["prompt"], first["completion"])
    micro = spec.micro_batch
    accumulation = spec.global_batch // per_pass
    config = SFTConfig(
        output_dir=str(out),
        seed=seed,
        data_seed=seed,
        learning_rate=spec.learning_rate,
        num_train_epochs=spec.epochs,
        max_steps=max_steps if max_steps is not None else -1,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        lr_scheduler_type="cosine_with_min_lr" if spec.min_lr_ratio else spec.scheduler,
        lr_scheduler_kwargs={"min_lr_rate": spec.min_lr_ratio} if spec.min_lr_ratio else None,
        warmup_steps=spec.warmup_ratio,
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        max_length=spec.max_length,
        packing=packing,
        packing_strategy="bfd",
        padding_free=packing,
        model_init_kwargs=init,
        completion_only_loss=spec.completion_only_loss,
        assistant_only_loss=False,
        shuffle_dataset=True,
        chat_template_path=chat_template,
        logging_steps=1,
        save_strategy=save,
        save_steps=save_steps or 500,
        save_total_limit=2 if save == "steps" else None,
        report_to=report_to,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        **session.device(precision),
    )
    with session.quiet_datasets(progress):
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            peft_config=session.lora_config(lora),
            callbacks=session.callbacks(out, spec.name, "sft"),
        )
    session.silence(trainer, progress)
    resume = session.last_checkpoint(out)
    # rows logged after the checkpoint resumed from (all of them when starting afresh)
    session.trim_metrics(out, session.checkpoint_step(resume) if resume else 0)
    start = time.perf_counter()
    try:
        with torch_threads(threads):
            trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        folder = session.save_model(trainer, out)
    finally:
        session.write_metrics_table(out)
    steps = int(trainer.state.global_step)
    seconds = round(time.perf_counter() - start, 2)
    warned = [] if packing == spec.packing else [_UNPACKED.format(name=spec.name)]
    session.finish(out, settings, steps=steps, seconds=seconds, packed=packing, warnings=warned)
    return session.TrainResult(
        out, folder, steps, resumed=resume is not None, warnings=tuple(warned)
    )


_UNPACKED = (
    "{name}: packing needs a flash-attention kernel (install flash-attn or kernels on a "
    "GPU): with sdpa or eager attention packed sequences would attend to each other; "
    "training without packing instead"
)


def _packing(spec: SFTPreset) -> tuple[bool, dict[str, Any] | None]:
    """Whether to pack, and the attention kernel that keeps packed sequences apart.

    Without such a kernel (a CPU, or a GPU without flash-attn) packed sequences would
    attend to each other, so training goes on without packing (the same loss on the same
    tokens, with more padding) and says so loudly.
    """
    if not spec.packing:
        return False, None
    kernel = session.packing_attention()
    if kernel is None:
        warnings.warn(_UNPACKED.format(name=spec.name), RuntimeWarning, stacklevel=3)
        return False, None
    return True, {"attn_implementation": kernel}


def _conversations(dataset: Any, fmt: str) -> Any:
    """``messages`` rows as prompt (all but the last message) and completion (the last)."""
    if fmt != "sft":
        return dataset

    def split(row: dict[str, Any]) -> dict[str, Any]:
        messages = row["messages"]
        return {"prompt": messages[:-1], "completion": messages[-1:]}

    return dataset.map(split, remove_columns=["messages"])
