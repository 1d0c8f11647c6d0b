"""``curate train sft|grpo``: the training commands, thin over `curate.train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from curate.cli_common import fail as _fail
from curate.errors import ConfigError, CurateError

train_app = typer.Typer(
    name="train",
    help="Train on an export (or a run): SFT or GRPO over TRL, with the papers' presets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help, as the main app (see curate.cli)
)

Data = Annotated[Path, typer.Argument(help="An export folder (or a run directory).")]
Model = Annotated[str, typer.Option("--model", help="Model folder or Hub name to start from.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (checkpoints, model).")]
MaxSteps = Annotated[int | None, typer.Option(help="Stop after N optimizer steps.")]
Seed = Annotated[int, typer.Option(help="Seed of the data order, sampling and init.")]
Lora = Annotated[bool, typer.Option("--lora", help="Train a LoRA adapter (merged at the end).")]
Precision = Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32.")]
SaveSteps = Annotated[int | None, typer.Option(help="Checkpoint every N steps (500).")]
Threads = Annotated[int | None, typer.Option(help="torch threads on a CPU.")]
Overwrite = Annotated[bool, typer.Option(help="Start over in a folder of another training.")]
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="Any preset field, e.g. --set warmup_ratio=0.1 (repeatable)."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _sets(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs; a value is read as JSON when it is JSON, else as a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _stage(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"--stage {text!r}: expected MAX_TOKENS:SAMPLES:STEPS, e.g. 8192:8:1040")
    a, b, c = (int(p) for p in parts)
    return a, b, c


def _report(result: Any) -> None:
    if result.skipped:
        typer.echo(f"already trained: {result.model} ({result.steps} steps)")
        return
    for warning in result.warnings[:5]:
        typer.echo(f"WARNING: {warning}", err=True)
    typer.echo(f"trained {result.steps} steps: model in {result.model}")
    typer.echo(f'metrics: curate sql {result.out} "SELECT * FROM metrics"')


@train_app.command("sft")
def sft_command(
    data: Data,
    model: Model,
    out: Out,
    preset: Annotated[str, typer.Option(help="deepdistill-stage1 | deepdistill-stage2")] = (
        "deepdistill-stage1"
    ),
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Epochs.")] = None,
    global_batch: Annotated[int | None, typer.Option(help="Sequences per step.")] = None,
    micro_batch: Annotated[int | None, typer.Option(help="Sequences per pass.")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    packing: Annotated[bool | None, typer.Option(help="Pack sequences.")] = None,
    chat_template: Annotated[
        str | None, typer.Option(help="Jinja chat template file (base models).")
    ] = None,
    max_steps: MaxSteps = None,
    seed: Seed = 0,
    lora: Lora = False,
    precision: Precision = "auto",
    save_steps: SaveSteps = None,
    threads: Threads = None,
    overwrite: Overwrite = False,
    set_: Sets = None,
    quiet: Quiet = False,
) -> None:
    """Supervised fine-tuning on an sft or trl export (DeepDistill's Stage I / II presets)."""
    from curate.train import sft

    given = {
        "learning_rate": lr,
        "epochs": epochs,
        "global_batch": global_batch,
        "micro_batch": micro_batch,
        "max_length": max_length,
        "packing": packing,
    }
    try:
        overrides = {k: v for k, v in given.items() if v is not None} | _sets(set_)
        result = sft(
            data,
            model,
            out,
            preset=preset,
            max_steps=max_steps,
            seed=seed,
            lora=lora,
            precision=precision,  # type: ignore[arg-type]  # checked by sft
            chat_template=chat_template,
            save_steps=save_steps,
            threads=threads,
            progress=not quiet,
            overwrite=overwrite,
            **overrides,
        )
    except CurateError as e:
        raise _fail(e) from None
    _report(result)


@train_app.command("grpo")
def grpo_command(
    data: Data,
    model: Model,
    out: Out,
    preset: Annotated[str, typer.Option(help="deepseekmath | deepscaler | dr_grpo | dapo")] = (
        "deepscaler"
    ),
    stage: Annotated[
        list[str] | None,
        typer.Option(help="MAX_TOKENS:SAMPLES:STEPS, a lengthening stage (repeatable)."),
    ] = None,
    prompts_per_step: Annotated[int | None, typer.Option(help="Prompts per step.")] = None,
    micro_batch: Annotated[int | None, typer.Option(help="Completions per pass.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    beta: Annotated[float | None, typer.Option(help="KL coefficient.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Rollout temperature.")] = None,
    vllm: Annotated[str, typer.Option(help="off | colocate | server (GPU).")] = "off",
    vllm_server_url: Annotated[str | None, typer.Option(help="`trl vllm-serve` URL.")] = None,
    chat_template: Annotated[
        str | None, typer.Option(help="Jinja chat template file (base models).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N steps (rollouts).")] = None,
    seed: Seed = 0,
    lora: Lora = False,
    precision: Precision = "auto",
    save_steps: SaveSteps = None,
    threads: Threads = None,
    overwrite: Overwrite = False,
    set_: Sets = None,
    quiet: Quiet = False,
) -> None:
    """GRPO with curate's verifier reward on an rl, verl or trl export."""
    from curate.train import grpo

    try:
        given: dict[str, Any] = {
            "stages": [_stage(s) for s in stage] if stage else None,
            "prompts_per_step": prompts_per_step,
            "micro_batch": micro_batch,
            "learning_rate": lr,
            "beta": beta,
            "temperature": temperature,
        }
        overrides = {k: v for k, v in given.items() if v is not None} | _sets(set_)
        result = grpo(
            data,
            model,
            out,
            preset=preset,
            max_steps=max_steps,
            seed=seed,
            lora=lora,
            precision=precision,  # type: ignore[arg-type]  # checked by grpo
            vllm=vllm,  # type: ignore[arg-type]
            vllm_server_url=vllm_server_url,
            chat_template=chat_template,
            save_steps=save_steps,
            threads=threads,
            progress=not quiet,
            overwrite=overwrite,
            **overrides,
        )
    except CurateError as e:
        raise _fail(e) from None
    _report(result)
