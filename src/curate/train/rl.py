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
from curate.train.presets import GRPOPreset, LengthStage, with_overrides
from curate.train.presets import preset as find_preset

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
    checkpoint, or returns at once when done.

    >>> grpo("data", "m", "out", preset="deepscaler", stages=[])
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: deepscaler: stages is empty; expected at least one LengthStage
    """
    chosen = find_preset(preset, "grpo") if isinstance(preset, str) else preset
    if not isinstance(chosen, GRPOPreset):
        raise ConfigError(f"grpo(preset={preset!r}): expected a GRPO preset name or GRPOPreset")
    spec = with_overrides(chosen, overrides)
    assert isinstance(spec, GRPOPreset)
    if max_steps is not None:
        spec = replace(spec, stages=_cut(spec.stages, max_steps))
    if vllm not in ("off", "colocate", "server"):
        raise ConfigError(f"vllm={vllm!r}: expected 'off', 'colocate' or 'server'")
    if vllm == "server" and not vllm_server_url:
        raise ConfigError("vllm='server' needs vllm_server_url (the `trl vllm-serve` address)")
    session.require_train_extra()
    out = Path(out)
    model = str(model)
    session.check_model(model)
    resolved = train_data.resolve(data, "grpo", out)
    with session.quiet_datasets(progress):
        dataset = train_data.load(resolved, "grpo")
    settings: dict[str, Any] = {
        "kind": "grpo",
        "preset": asdict(spec),
        "model": model,
        "data": resolved.describe(),
        "seed": seed,
        "lora": lora,
        "vllm": vllm,
    }
    settings["fingerprint"] = session.fingerprint(settings)
    state = session.begin(out, settings, overwrite=overwrite)
    if state is not None and state.get("status") == "done":
        return session.TrainResult(
            out, out / session.MODEL_DIR, int(state.get("steps", 0)), skipped=True
        )
    resume = session.last_checkpoint(out)
    resumed = resume is not None
    if resume is not None:
        session.trim_metrics(out, session.checkpoint_step(resume))
    start, warned = time.perf_counter(), []
    trainer: Any = None
    end = 0  # the step the current stage ends at
    for i, stage in enumerate(spec.stages):
        end += stage.steps
        last = i == len(spec.stages) - 1
        if resume is not None and session.checkpoint_step(resume) >= end and not last:
            continue  # finished before an interruption
        name = f"{spec.name}-{i + 1}" if len(spec.stages) > 1 else spec.name
        config = _config(spec, stage, out, end, seed, precision, save_steps, progress, report_to)
        _vllm(config, vllm, vllm_server_url, vllm_gpu_memory)
        callbacks = [*session.callbacks(out, name, "grpo"), _save_at(end)]
        with session.quiet_datasets(progress):
            trainer = _trainer(model, config, dataset, spec, stage, lora, callbacks)
        session.silence(trainer, progress)
        with torch_threads(threads):
            trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        warned += session.guard_warnings(callbacks)
        resume = session.last_checkpoint(out)
    folder = session.save_model(trainer, out)
    session.write_metrics_table(out)
    session.finish(
        out, settings, steps=end, seconds=round(time.perf_counter() - start, 2), warnings=warned
    )
    return session.TrainResult(out, folder, end, resumed=resumed, warnings=tuple(warned))


def _cut(stages: tuple[LengthStage, ...], max_steps: int) -> tuple[LengthStage, ...]:
    """The schedule cut after ``max_steps`` steps in all."""
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
    per_pass = spec.micro_batch * session.world_size()
    if completions % per_pass:
        raise ConfigError(
            f"{spec.name}: {spec.prompts_per_step} prompts x {stage.num_generations} samples = "
            f"{completions} completions per step is not a multiple of micro_batch x devices = "
            f"{per_pass}; change prompts_per_step or micro_batch"
        )
    return GRPOConfig(
        output_dir=str(out),
        seed=seed,
        data_seed=seed,
        max_steps=steps,
        learning_rate=spec.learning_rate,
        lr_scheduler_type=spec.scheduler,
        warmup_steps=spec.warmup_ratio,
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        per_device_train_batch_size=spec.micro_batch,
        gradient_accumulation_steps=completions // per_pass,
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
