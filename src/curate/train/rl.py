"""GRPO on an ``rl``, ``verl`` or ``trl`` export, with TRL's ``GRPOTrainer`` and curate's
verifier reward (`curate.reward`).

A preset's `LengthStage`\\ s run in turn (iterative context lengthening): stage *k* trains
to the cumulative step count of stages 1..k with its own completion length and samples per
prompt, resumed from the checkpoint saved at the end of stage *k-1* (model, optimizer,
scheduler and RNG states). Every option a preset depends on is set on ``GRPOConfig``
explicitly. Per step, ``metrics.parquet`` has TRL's metrics and, under curate's names,
``groups_all_equal`` (the share of groups whose rewards are all equal: no learning signal)
and ``truncated`` (the share of completions cut at the length limit); a run where every
completion is truncated stops with `TrainingError` (see `curate.train.session`).

vLLM generation inside TRL (``vllm="colocate"`` on the training GPUs, or ``"server"``
against ``trl vllm-serve``) needs a GPU; on a CPU generation is transformers'.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

from curate._torch import torch_threads
from curate.errors import ConfigError
from curate.train import data as train_data
from curate.train import session
from curate.train.presets import GRPOPreset, LengthStage
from curate.train.presets import resolve as resolve_preset

VLLMMode = Literal["off", "colocate", "server"]


def grpo(
    data: str | Path,
    model: str | Path,
    out: str | Path,
    *,
    preset: str | GRPOPreset = "deepscaler",
    max_steps: int | None = None,
    seed: int = 0,
    lora: bool | dict[str, Any] = False,
    precision: session.Precision = "auto",
    vllm: VLLMMode = "off",
    vllm_server_url: str | None = None,
    vllm_gpu_memory: float = 0.3,
    chat_template: str | None = None,
    save_steps: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    report_to: str = "none",
    **overrides: Any,
) -> session.TrainResult:
    r"""Train ``model`` with GRPO on the prompts of export ``data`` (or a run) into ``out``.

    ``preset`` is a name (``deepseekmath``, ``deepscaler``, ``dr_grpo``, ``dapo``) or a
    `GRPOPreset`; ``overrides`` change its fields (``stages=[(max_completion_length,
    num_generations, steps), ...]``, ``prompts_per_step=``, ``micro_batch=``,
    ``learning_rate=``, ``beta=``, ``temperature=``, ``rewards=``...). ``max_steps`` cuts
    the schedule short (a smoke test). The same call again resumes from the last
    checkpoint, or returns at once when done. ``chat_template``: a Jinja file for a model
    without one (a base model: the prompts are conversations).

    >>> grpo("data", "m", "out", preset="deepscaler", stages=[])
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: deepscaler: stages is empty; expected at least one LengthStage
    """
    spec: GRPOPreset = resolve_preset(preset, "grpo", overrides)
    if max_steps is not None:
        spec = replace(spec, stages=_cut(spec.stages, max_steps))
    if vllm not in ("off", "colocate", "server"):
        raise ConfigError(f"vllm={vllm!r}: expected 'off', 'colocate' or 'server'")
    if vllm == "server" and not vllm_server_url:
        raise ConfigError("vllm='server' needs vllm_server_url (the `trl vllm-serve` address)")
    if lora and spec.ref_reset_steps is not None:
        raise ConfigError(
            f"{spec.name}: resetting the reference model (ref_reset_steps="
            f"{spec.ref_reset_steps}) is not possible with LoRA in TRL; pass "
            "ref_reset_steps=None (--set ref_reset_steps=null) or train without LoRA"
        )
    session.require_train_extra()
    out = Path(out)
    model = str(model)
    session.check_model(model, chat_template=chat_template, trainer="grpo")
    session.prepare(out, overwrite=overwrite)
    resolved = train_data.resolve(data, "grpo", out)
    with session.quiet_datasets(progress):
        dataset = train_data.load(resolved, "grpo")
    if len(dataset) < spec.prompts_per_step:
        raise ConfigError(
            f"{resolved.folder} has {len(dataset)} prompts, fewer than one step's "
            f"prompts_per_step={spec.prompts_per_step}: TRL drops an incomplete batch, so "
            "nothing would be trained; lower prompts_per_step or export more problems"
        )
    settings: dict[str, Any] = {
        "kind": "grpo",
        "preset": asdict(spec),
        "model": model,
        "data": resolved.describe(),
        "seed": seed,
        "lora": lora,
        "vllm": vllm,
        "chat_template": chat_template,
    }
    settings["fingerprint"] = session.fingerprint(settings)
    state = session.begin(out, settings)
    if state is not None and state.get("status") == "done":
        return session.TrainResult(
            out, out / session.MODEL_DIR, int(state.get("steps", 0)), skipped=True
        )
    resume = session.last_checkpoint(out)
    resumed = resume is not None
    # rows logged after the checkpoint resumed from (all of them when starting afresh)
    session.trim_metrics(out, session.checkpoint_step(resume) if resume else 0)
    start, warned = time.perf_counter(), []
    trainer: Any = None
    end = 0  # the optimizer step the current stage ends at
    try:
        for i, stage in enumerate(spec.stages):
            end += stage.steps * spec.updates_per_step
            last = i == len(spec.stages) - 1
            if resume is not None and session.checkpoint_step(resume) >= end and not last:
                continue  # finished before an interruption
            name = f"{spec.name}-{i + 1}" if len(spec.stages) > 1 else spec.name
            config = _config(
                spec, stage, out, end, seed, precision, save_steps, progress, report_to
            )
            _vllm(config, vllm, vllm_server_url, vllm_gpu_memory)
            callbacks = [*session.callbacks(out, name, "grpo"), _save_at(end)]
            if trainer is not None:  # the previous stage's: two at once would not fit a GPU
                _shutdown_vllm(trainer)
                trainer = None
                _collect()
            with session.quiet_datasets(progress):
                trainer = _trainer(model, config, dataset, spec, stage, lora, callbacks)
                if chat_template is not None:
                    trainer.processing_class.chat_template = Path(chat_template).read_text()
            session.silence(trainer, progress)
            with torch_threads(threads):
                trainer.train(resume_from_checkpoint=str(resume) if resume else None)
            warned += session.guard_warnings(callbacks)
            if trainer.state.global_step < end:
                raise session.TrainingError(
                    f"stage {name} stopped at step {trainer.state.global_step} of {end}: the "
                    "data ran out (TRL drops incomplete batches); lower prompts_per_step"
                )
            resume = session.last_checkpoint(out)
        folder = session.save_model(trainer, out)
    finally:
        session.write_metrics_table(out)
    session.finish(
        out, settings, steps=end, seconds=round(time.perf_counter() - start, 2), warnings=warned
    )
    return session.TrainResult(out, folder, end, resumed=resumed, warnings=tuple(warned))


def _shutdown_vllm(trainer: Any) -> None:
    """Stop a colocated vLLM engine (TRL's ``vllm_generation.llm``), if there is one."""
    llm = getattr(getattr(trainer, "vllm_generation", None), "llm", None)
    if llm is not None and hasattr(llm, "shutdown"):
        llm.shutdown()


def _collect() -> None:
    """Free what a dropped trainer held (its model, optimizer, engine), GPU memory too."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _cut(stages: tuple[LengthStage, ...], max_steps: int) -> tuple[LengthStage, ...]:
    """The schedule cut after ``max_steps`` steps (rollouts) in all."""
    if max_steps < 1:
        raise ConfigError(f"max_steps={max_steps}: expected a positive integer")
    kept, left = [], max_steps
    for stage in stages:
        if left <= 0:
            break
        kept.append(replace(stage, steps=min(stage.steps, left)))
        left -= stage.steps
    return tuple(kept)


def _config(
    spec: GRPOPreset,
    stage: LengthStage,
    out: Path,
    steps: int,
    seed: int,
    precision: session.Precision,
    save_steps: int | None,
    progress: bool,
    report_to: str,
) -> Any:
    from trl.trainer.grpo_config import GRPOConfig

    completions = spec.prompts_per_step * stage.num_generations
    per_update = spec.micro_batch * session.world_size() * spec.updates_per_step
    if completions % per_update:
        raise ConfigError(
            f"{spec.name}: {spec.prompts_per_step} prompts x {stage.num_generations} samples = "
            f"{completions} completions per step is not a multiple of micro_batch x devices x "
            f"updates_per_step = {per_update}; change prompts_per_step or micro_batch"
        )
    passes = completions // (spec.micro_batch * session.world_size())
    return GRPOConfig(
        output_dir=str(out),
        seed=seed,
        data_seed=seed,
        max_steps=steps,
        learning_rate=spec.learning_rate,
        lr_scheduler_type=_with_warmup(spec.scheduler, spec.warmup_ratio),
        warmup_steps=spec.warmup_ratio,
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        per_device_train_batch_size=spec.micro_batch,
        gradient_accumulation_steps=passes // spec.updates_per_step,
        steps_per_generation=passes,
        num_generations=stage.num_generations,
        max_completion_length=stage.max_completion_length,
        num_iterations=1,
        beta=spec.beta,
        loss_type=spec.loss_type,
        scale_rewards=spec.scale_rewards,
        epsilon=spec.epsilon,
        epsilon_high=spec.epsilon_high,
        temperature=spec.temperature,
        top_p=spec.top_p,
        top_k=0,
        mask_truncated_completions=spec.mask_truncated_completions,
        sync_ref_model=spec.ref_reset_steps is not None,
        ref_model_mixup_alpha=1.0,
        ref_model_sync_steps=spec.ref_reset_steps or 512,
        disable_dropout=True,
        remove_unused_columns=False,
        shuffle_dataset=True,
        logging_steps=1,
        log_completions=False,
        save_strategy="steps",
        save_steps=save_steps or 500,
        save_total_limit=2,
        report_to=report_to,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        **session.device(precision),
    )


def _with_warmup(scheduler: str, warmup: float) -> str:
    """transformers' ``constant`` schedule ignores a warm-up: ``constant_with_warmup``."""
    return "constant_with_warmup" if scheduler == "constant" and warmup > 0 else scheduler


def _vllm(config: Any, mode: VLLMMode, url: str | None, memory: float) -> None:
    if mode == "off":
        return
    config.use_vllm = True
    config.vllm_mode = mode
    config.vllm_gpu_memory_utilization = memory
    if url:
        config.vllm_server_base_url = url


def _rewards(spec: GRPOPreset, stage: LengthStage) -> list[Any]:
    from curate.reward import make_accuracy_reward, make_think_format_reward

    found: list[Any] = []
    for name in spec.rewards:
        if name == "accuracy":
            found.append(make_accuracy_reward())
        elif name == "format":
            found.append(make_think_format_reward(opened_in="either"))
        else:  # overlong, DAPO's soft punishment
            from trl.rewards.other_rewards import get_soft_overlong_punishment

            buffer = min(spec.overlong_buffer, stage.max_completion_length - 1)
            found.append(get_soft_overlong_punishment(stage.max_completion_length, buffer))
    return found


def _trainer(
    model: str,
    config: Any,
    dataset: Any,
    spec: GRPOPreset,
    stage: LengthStage,
    lora: bool | dict[str, Any],
    callbacks: list[Any],
) -> Any:
    from trl.trainer.grpo_trainer import GRPOTrainer

    return GRPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        reward_funcs=_rewards(spec, stage),
        peft_config=session.lora_config(lora),
        callbacks=callbacks,
    )


def _save_at(step: int) -> Any:
    """A checkpoint at the end of a stage, which the next stage resumes from."""
    from transformers import TrainerCallback

    class SaveAt(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if state.global_step == step:
                control.should_save = True
            return control

    return SaveAt()
