"""What SFT and GRPO share: the output folder, resuming, the device, the model checks, and
the callbacks that write the metrics and watch for runs that cannot learn.

The output folder of a training run::

    OUT/train.json       what was trained (preset, model, data, seed) and its status
    OUT/metrics.jsonl    one line per logged step, appended as training goes
    OUT/metrics.parquet  the same as a table (``curate sql OUT "SELECT * FROM metrics"``)
    OUT/checkpoint-N/    TRL/transformers checkpoints (model, optimizer, scheduler, RNG)
    OUT/model/           the trained model and its tokenizer (LoRA merged into it)

A second call with the same settings on the same ``OUT`` resumes from the last checkpoint,
or returns at once when training finished; other settings are an error (a new ``OUT``, or
``overwrite=True``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from curate.errors import ConfigError, CurateError, MissingExtraError
from curate.io import write_json

Precision = Literal["auto", "bf16", "fp16", "fp32"]
STATE = "train.json"
METRICS = "metrics"
MODEL_DIR = "model"
# TRL's names of the two signals a GRPO run must not lose sight of, and curate's names
ALIASES = {"frac_reward_zero_std": "groups_all_equal", "completions/clipped_ratio": "truncated"}


class TrainingError(CurateError):
    """Training cannot go on (every completion truncated, no learning signal at all)."""


@dataclass(frozen=True)
class TrainResult:
    """What a training call left in ``out``: the model folder, steps, metrics, warnings."""

    out: Path
    model: Path
    steps: int
    resumed: bool = False
    skipped: bool = False
    warnings: tuple[str, ...] = field(default=())

    @property
    def metrics_path(self) -> Path:
        return self.out / f"{METRICS}.parquet"

    def metrics(self) -> Any:
        """The logged steps as a Polars frame (one row per step, TRL's names with ``_``)."""
        import polars as pl

        return pl.read_parquet(self.metrics_path)


def require_train_extra() -> None:
    """Fail early, with the pip command, when TRL, peft or accelerate is missing."""
    import importlib.util

    for module in ("trl", "peft", "accelerate", "transformers", "datasets", "torch"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(module, "train")


def fingerprint(settings: Mapping[str, Any]) -> str:
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=12).hexdigest()


def prepare(out: Path, *, overwrite: bool) -> None:
    """Make ``out`` ready before anything is written into it: emptied with ``overwrite``,
    else new, empty, or a previous training's folder (checked against it in `begin`)."""
    if not is_main_process():  # the main process prepares the folder
        return
    if overwrite and out.exists():
        shutil.rmtree(out)
    elif (
        out.exists() and not (out / STATE).exists() and any(p.name != "data" for p in out.iterdir())
    ):
        raise ConfigError(
            f"{out} is not empty and holds no curate training run; expected a new or empty "
            "folder (or overwrite=True to replace it)"
        )
    out.mkdir(parents=True, exist_ok=True)


def begin(out: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The previous state when ``out`` holds the same training (to resume or skip), None
    for a fresh start (its state written as running); an error for another training."""
    path = out / STATE
    if path.exists():
        state = json.loads(path.read_text())
        if state.get("fingerprint") == settings["fingerprint"]:
            return dict(state)
        differ = sorted(
            k for k in settings if k != "fingerprint" and state.get(k) != settings.get(k)
        )
        raise ConfigError(
            f"{out} holds a training run with other settings (differing: {', '.join(differ)}); "
            "pass another output folder, or overwrite=True (--overwrite) to start over"
        )
    if is_main_process():
        write_json({**settings, "status": "running"}, path)
    return None


def finish(out: Path, settings: dict[str, Any], **facts: Any) -> None:
    if is_main_process():
        write_json({**settings, "status": "done", **facts}, out / STATE)


def last_checkpoint(out: Path) -> Path | None:
    """The checkpoint with the highest step in ``out`` (None when there is none)."""
    found = [
        (int(p.name.split("-")[1]), p)
        for p in out.glob("checkpoint-*")
        if p.is_dir() and p.name.split("-")[1].isdigit() and (p / "trainer_state.json").exists()
    ]
    return max(found)[1] if found else None


def checkpoint_step(path: Path) -> int:
    return int(path.name.split("-")[1])


def device(precision: Precision) -> dict[str, Any]:
    """TrainingArguments for the device: CUDA when there is one (bf16 where supported),
    else the CPU in float32."""
    import torch

    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ConfigError(f"precision={precision!r}: expected 'auto', 'bf16', 'fp16' or 'fp32'")
    cuda = torch.cuda.is_available()
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision in ("bf16", "fp16") and not cuda:
        raise ConfigError(f"precision={precision!r} needs a GPU; on a CPU use 'fp32' or 'auto'")
    return {
        "use_cpu": not cuda,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "gradient_checkpointing": cuda,
    }


def packing_attention() -> str | None:
    """The attention kernel that keeps packed sequences apart, or None where there is none.

    Packing puts several sequences in one row and tells them apart by ``position_ids``
    only; transformers' ``sdpa`` and ``eager`` attention ignore that and let a sequence
    attend to the ones before it (measured on the toy model: logits off by 9). Only the
    varlen flash-attention kernels (GPU) honour it.
    """
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return None
    if importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    if importlib.util.find_spec("kernels") is not None:
        return "kernels-community/flash-attn2"
    return None


@contextlib.contextmanager
def quiet_datasets(progress: bool) -> Iterator[None]:
    """``datasets``' own progress bars (map, tokenize) off when ``progress`` is."""
    import datasets

    if progress:
        yield
        return
    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def silence(trainer: Any, progress: bool) -> Any:
    """Without ``progress``, the trainer prints nothing per step either (transformers'
    ``PrinterCallback`` prints every log when the bars are off): the metrics are in
    ``metrics.jsonl``."""
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


def world_size() -> int:
    """Processes in the job (``accelerate launch`` / ``torchrun`` set ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this is the process that writes the folder's files (rank 0)."""
    return int(os.environ.get("RANK", "0")) == 0


def check_model(model: str, *, chat_template: str | None = None, trainer: str = "sft") -> None:
    """The model folder exists and its tokenizer has a chat template (curate's shards are
    conversations): a clear error before any training starts."""
    folder = Path(model)
    if not folder.exists():
        if model.startswith((".", "/")) or model.count("/") > 1:
            raise ConfigError(f"model folder {model} does not exist")
        return  # a Hub name: transformers says what is wrong with it
    if not (folder / "config.json").exists():
        raise ConfigError(f"{folder} has no config.json: expected a transformers model folder")
    if chat_template is not None:
        if not Path(chat_template).is_file():
            raise ConfigError(f"chat template {chat_template} does not exist")
        return
    from curate.generate.base import has_chat_template

    if not has_chat_template(folder):
        raise ConfigError(
            f"{folder}: the tokenizer has no chat template, and curate's shards are chat "
            "conversations; use the instruct/chat version of the model, or give a Jinja "
            f"template file to train a base model with (curate.train.{trainer}(..., "
            f"chat_template=FILE) / curate train {trainer} --chat-template FILE)"
        )


def check_template_keeps(
    model: str, chat_template: str | None, prompt: list[Any], completion: list[Any]
) -> None:
    """The chat template renders the whole assistant message it is trained on.

    Some templates rewrite assistant turns: DeepSeek-R1's distilled models drop everything
    up to ``</think>``, so SFT through them would train on answers without their reasoning.
    Checked on one row before training; a template that drops text is an error.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if chat_template is not None:
        tokenizer.chat_template = Path(chat_template).read_text()
    text = tokenizer.apply_chat_template([*prompt, *completion], tokenize=False)
    content = str(completion[-1]["content"]).strip()
    head, tail = content[:40], content[-40:]
    if head not in text or tail not in text:
        raise ConfigError(
            f"the chat template of {chat_template or model} does not render the assistant "
            f"message it would train on (it starts {head!r} but the rendered text does not "
            "hold it: DeepSeek-R1-distilled models' templates drop the <think> part of "
            "assistant turns); give a template that keeps the whole message "
            "(chat_template=FILE / --chat-template FILE)"
        )


def lora_config(lora: bool | Mapping[str, Any]) -> Any:
    """peft's LoraConfig: r 16, alpha 32, dropout 0.05 on every linear layer, or yours."""
    if not lora:
        return None
    from peft import LoraConfig

    options: dict[str, Any] = {
        "r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "target_modules": "all-linear",
        "task_type": "CAUSAL_LM",
    }
    if isinstance(lora, Mapping):
        options.update(lora)
    return LoraConfig(**options)


def save_model(trainer: Any, out: Path) -> Path:
    """The final model and tokenizer in ``out/model`` (written beside it, then renamed).

    A full model goes through ``trainer.save_model``, which gathers the weights of a sharded
    run (FSDP, DeepSpeed ZeRO-3) first; a LoRA adapter is merged into its base model, so
    ``out/model`` always loads on its own (with ZeRO-3 or sharded FSDP, save the adapter
    from the last checkpoint and merge it after training instead).
    """
    target = out / MODEL_DIR
    tmp = out / f".{MODEL_DIR}.tmp"
    accelerator = trainer.accelerator
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    unwrapped = accelerator.unwrap_model(trainer.model)
    unwrapped.config.use_cache = True  # training turned the KV cache off; generation wants it
    if hasattr(unwrapped, "merge_and_unload"):  # LoRA
        merged = unwrapped.merge_and_unload()
        if accelerator.is_main_process:
            merged.save_pretrained(str(tmp))
            trainer.processing_class.save_pretrained(str(tmp))
    else:
        trainer.save_model(str(tmp))  # every process: a sharded model is gathered
    if accelerator.is_main_process:
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle: not part of a model
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    accelerator.wait_for_everyone()
    return target


def callbacks(out: Path, stage: str, kind: str) -> list[Any]:
    """The metrics writer (and, for GRPO, the learning-signal guard)."""
    found: list[Any] = [_metrics_callback(out, stage)]
    if kind == "grpo":
        found.append(_guard_callback())
    return found


def trim_metrics(out: Path, after_step: int) -> None:
    """Drop logged rows past ``after_step`` (logged after the checkpoint resumed from)."""
    path = out / f"{METRICS}.jsonl"
    if not path.exists() or not is_main_process():
        return
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in rows if int(r.get("step", 0)) <= after_step]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)


def write_metrics_table(out: Path) -> Path:
    """``metrics.jsonl`` as ``metrics.parquet`` (written to a temp file, then renamed): at
    each checkpoint and when training ends, however it ends."""
    import polars as pl

    target = out / f"{METRICS}.parquet"
    if not is_main_process():
        return target
    path = out / f"{METRICS}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame({"step": []})
    tmp = target.with_suffix(".parquet.tmp")
    frame.write_parquet(tmp)
    tmp.replace(target)
    return target


def _column(name: str) -> str:
    return name.replace("/", "_").replace(" ", "_")


def _metrics_callback(out: Path, stage: str) -> Any:
    from transformers import TrainerCallback

    class MetricsWriter(TrainerCallback):
        """Appends every log of TRL (loss, reward, KL, ...) to ``metrics.jsonl``."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not logs or not state.is_world_process_zero or "train_runtime" in logs:
                return
            row: dict[str, Any] = {"stage": stage, "step": state.global_step}
            for key, value in logs.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    row[_column(key)] = float(value)
                    if key in ALIASES:
                        row[ALIASES[key]] = float(value)
            with (out / f"{METRICS}.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            write_metrics_table(out)  # queryable while training goes on

    return MetricsWriter()


def _guard_callback(patience: int = 5) -> Any:
    """Warns loudly at each step where every completion was truncated, and at each of the
    first ``patience`` steps where every group's rewards were equal (no learning signal;
    later ones are in the metrics as ``groups_all_equal``); stops the run with an error
    when every completion was truncated in each of the first ``patience`` logged steps:
    the rewards are then 0 by construction and nothing is learned."""
    from transformers import TrainerCallback

    class Guard(TrainerCallback):
        def __init__(self) -> None:
            self.truncated_steps = 0
            self.logged = 0
            self.warned: list[str] = []

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not logs or "completions/clipped_ratio" not in logs:
                return
            self.logged += 1
            truncated = logs["completions/clipped_ratio"]
            if truncated >= 1.0:
                self.truncated_steps += 1
                self._warn(
                    f"step {state.global_step}: every completion was truncated at "
                    f"max_completion_length={args.max_completion_length} tokens, so none has "
                    "a final answer and every accuracy reward is 0: raise max_completion_length"
                )
                if self.truncated_steps == self.logged >= patience:
                    raise TrainingError(
                        f"every completion of the first {patience} steps was truncated at "
                        f"max_completion_length={args.max_completion_length} tokens: the "
                        "rewards are all 0 and nothing can be learned; raise "
                        "max_completion_length (a LengthStage's first value)"
                    )
            if logs.get("frac_reward_zero_std", 0.0) >= 1.0 and state.global_step <= patience:
                self._warn(
                    f"step {state.global_step}: in every group all rewards were equal "
                    f"(mean reward {logs.get('reward', float('nan')):.3g}), so every advantage "
                    "is 0 and the step learned nothing: the problems are too hard or too easy "
                    "for this model, or the reward cannot read its answers"
                )

        def _warn(self, message: str) -> None:
            self.warned.append(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)

    return Guard()


def guard_warnings(trainer_callbacks: list[Any]) -> list[str]:
    found: list[str] = []
    for cb in trainer_callbacks:
        found.extend(getattr(cb, "warned", []))
    return found
