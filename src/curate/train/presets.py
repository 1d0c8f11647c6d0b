r"""Training presets from the papers: every value a recipe depends on, written out.

A preset is a frozen dataclass; `curate.train.sft` and `curate.train.grpo` turn it into
TRL's ``SFTConfig``/``GRPOConfig`` and set each of these options explicitly (TRL's own
defaults changed across 1.x: ``loss_type``, ``scale_rewards``, ``beta`` and the warm-up among
them). Any field can be overridden by keyword (``sft(..., learning_rate=1e-5)``) or with
`dataclasses.replace`.

SFT (`SFTPreset`):

- ``deepdistill-stage1``: DeepDistill's Stage I, learning rate 8e-5 (reasoning SFT from a
  base model needs a high rate: 8e-6 lost 6.7 points on AIME 2024), 1 epoch, packing up
  to 32K tokens, global batch 64, cosine schedule with 5% linear warm-up decaying to 0;
- ``deepdistill-stage2``: its annealing Stage II, learning rate 8e-6, 2 epochs, no packing;
- ``less-warmup``: LESS's LoRA warm-up before gradient features (`curate.InfluenceSelect`):
  learning rate 2e-5, 4 epochs, batch 32, linear decay after 3% warm-up, no packing (its
  LoRA: rank 128, alpha 512, dropout 0.1 on q/k/v/o, is the stage's ``lora``);
- ``jiuzhang-synth``: JiuZhang3.0's problem-synthesis model, fine-tuned on the teacher's
  problems (`curate.synth.kd_pairs`): learning rate 1e-5, cosine, 5 epochs, batch 32,
  sequences up to 2,048 tokens, no packing.

Packing needs a flash-attention kernel (flash-attn or kernels, on a GPU): with transformers'
``sdpa``/``eager`` attention, packed sequences would attend to each other, so without one
`curate.train.sft` trains unpacked and warns.

GRPO (`GRPOPreset`), each a list of `LengthStage` run in turn (one stage for most):

- ``deepseekmath``: GRPO as introduced by DeepSeekMath: no critic, advantages
  ``(r - mean) / std`` within each group, the KL to the reference model in the loss with
  the unbiased per-token estimator ``π_ref/π_θ - log(π_ref/π_θ) - 1`` (TRL's, coefficient
  0.04), 64 samples per question, completions up to 1024 tokens, learning rate 1e-6, a
  training batch of 1024 samples (16 questions of 64) with one policy update per batch;
  iterative RL resets the reference model to the policy (here every ``ref_reset_steps``
  = 500 steps: the paper does not say how often);
- ``deepscaler``: DeepScaleR's run from DeepSeek-R1-Distill-Qwen-1.5B: 0/1 verifier reward,
  learning rate 1e-6, 128 prompts per step in two updates of 64 (its verl scripts'
  ``ppo_mini_batch_size``), KL coefficient 0.001, temperature 0.6, and
  iterative context lengthening: 8K tokens with 8 samples per prompt for 1040 steps, then
  16K with 16 (to step 1520), then 24K with 16 (to step 1750), each stage resumed from the
  last checkpoint;
- ``dr_grpo``: Dr. GRPO (Liu et al. 2025): no division by the group's standard deviation
  and no per-length normalization (a constant instead), no KL;
- ``dapo``: DAPO (Yu et al. 2025): decoupled clipping (0.2 / 0.28), token-level loss over
  the batch, no KL, soft overlong punishment in the last 4K tokens of a 20K budget, 16
  samples, 512 prompts per step in 16 updates, weight decay 0.1, a short linear warm-up
  (2% of the steps; DAPO warms up over 20 rollouts). Not as in DAPO: its dynamic sampling
  (drop groups whose rewards are all equal and sample more) is not in TRL, so the share of
  such groups is logged instead; and its accuracy reward is +1/-1 where curate's is 1/0,
  which leaves the advantages of the accuracy reward alone unchanged but doubles the
  overlong penalty's weight relative to it.

>>> preset("deepscaler").stages[1]
LengthStage(max_completion_length=16384, num_generations=16, steps=480)
>>> preset("deepdistill-stage1").learning_rate
8e-05
>>> preset("ppo")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
curate.errors.ConfigError: unknown preset 'ppo'; expected one of: deepdistill-stage1, ...
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from curate.errors import ConfigError

LossType = Literal["grpo", "dr_grpo", "dapo", "bnpo"]
ScaleRewards = Literal["group", "batch", "none"]


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ConfigError(f"{type(obj).__name__}({name}={value!r}): expected > 0")


@dataclass(frozen=True)
class SFTPreset:
    """Supervised fine-tuning settings (TRL ``SFTTrainer``).

    ``global_batch`` is sequences (or packed sequences) per optimizer step over every
    device: curate picks the gradient accumulation from it and ``micro_batch``.
    """

    name: str = "custom"
    learning_rate: float = 2e-5
    epochs: float = 1.0
    global_batch: int = 64
    micro_batch: int = 1
    max_length: int = 32768
    packing: bool = False
    scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    completion_only_loss: bool = True

    def __post_init__(self) -> None:
        _positive(self, "learning_rate", "epochs", "global_batch", "micro_batch", "max_length")
        if self.global_batch % self.micro_batch:
            raise ConfigError(
                f"{self.name}: global_batch={self.global_batch} is not a multiple of "
                f"micro_batch={self.micro_batch}"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"{self.name}: warmup_ratio={self.warmup_ratio}: expected [0, 1)")


@dataclass(frozen=True)
class LengthStage:
    """One stage of iterative context lengthening: completions up to
    ``max_completion_length`` tokens, ``num_generations`` samples per prompt, ``steps``
    optimizer steps (the stage after it resumes from its last checkpoint)."""

    max_completion_length: int
    num_generations: int
    steps: int

    def __post_init__(self) -> None:
        _positive(self, "max_completion_length", "num_generations", "steps")
        if self.num_generations < 2:
            raise ConfigError(
                f"LengthStage(num_generations={self.num_generations}): GRPO compares samples "
                "within a group, so it needs at least 2"
            )


@dataclass(frozen=True)
class GRPOPreset:
    """GRPO settings (TRL ``GRPOTrainer``); ``stages`` run in turn (see `LengthStage`).

    A step is one rollout: ``prompts_per_step`` prompts, each sampled ``num_generations``
    times, then ``updates_per_step`` optimizer updates on equal parts of those completions
    (verl's ``train_batch_size`` / ``ppo_mini_batch_size``); the gradient accumulation
    follows from ``micro_batch`` (completions per forward pass and device). ``rewards``
    names curate's reward functions (``accuracy``:
    `curate.reward`'s 0/1 verifier reward; ``format``: the ``<think>`` structure;
    ``overlong``: DAPO's soft overlong punishment over the last ``overlong_buffer`` tokens).
    """

    name: str = "custom"
    stages: tuple[LengthStage, ...] = (LengthStage(1024, 8, 1000),)
    learning_rate: float = 1e-6
    prompts_per_step: int = 128
    updates_per_step: int = 1
    micro_batch: int = 8
    beta: float = 0.0
    loss_type: LossType = "dapo"
    scale_rewards: ScaleRewards = "group"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    mask_truncated_completions: bool = False
    ref_reset_steps: int | None = None
    rewards: tuple[str, ...] = ("accuracy",)
    overlong_buffer: int = 0
    scheduler: str = "constant"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "rewards", tuple(self.rewards))
        if not self.stages:
            raise ConfigError(f"{self.name}: stages is empty; expected at least one LengthStage")
        _positive(self, "learning_rate", "prompts_per_step", "updates_per_step", "micro_batch")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"{self.name}: warmup_ratio={self.warmup_ratio}: expected [0, 1)")
        if self.beta < 0:
            raise ConfigError(f"{self.name}: beta={self.beta}: expected >= 0")
        unknown = set(self.rewards) - {"accuracy", "format", "overlong"}
        if unknown or not self.rewards:
            raise ConfigError(
                f"{self.name}: rewards={list(self.rewards)}: expected names among "
                "'accuracy', 'format', 'overlong'"
            )
        if "overlong" in self.rewards and self.overlong_buffer <= 0:
            raise ConfigError(f"{self.name}: the 'overlong' reward needs overlong_buffer > 0")
        if self.ref_reset_steps is not None and self.beta == 0:
            raise ConfigError(
                f"{self.name}: ref_reset_steps={self.ref_reset_steps} with beta=0: without a "
                "KL term there is no reference model to reset"
            )

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)


Preset = SFTPreset | GRPOPreset

PRESETS: dict[str, Preset] = {
    "deepdistill-stage1": SFTPreset(
        name="deepdistill-stage1",
        learning_rate=8e-5,
        epochs=1,
        global_batch=64,
        max_length=32768,
        packing=True,
        warmup_ratio=0.05,
    ),
    "deepdistill-stage2": SFTPreset(
        name="deepdistill-stage2",
        learning_rate=8e-6,
        epochs=2,
        global_batch=64,
        max_length=32768,
        packing=False,
        warmup_ratio=0.05,
    ),
    "jiuzhang-synth": SFTPreset(  # JiuZhang3.0's synthesis model: 5 epochs at 1e-5, cosine
        name="jiuzhang-synth",
        learning_rate=1e-5,
        epochs=5,
        global_batch=32,
        max_length=2048,
        packing=False,
        scheduler="cosine",
        warmup_ratio=0.03,
    ),
    "less-warmup": SFTPreset(
        name="less-warmup",
        learning_rate=2e-5,
        epochs=4,
        global_batch=32,
        max_length=2048,
        packing=False,
        scheduler="linear",
        warmup_ratio=0.03,
    ),
    "deepseekmath": GRPOPreset(
        name="deepseekmath",
        stages=(LengthStage(1024, 64, 1000),),
        learning_rate=1e-6,
        prompts_per_step=16,
        beta=0.04,
        loss_type="grpo",
        scale_rewards="group",
        temperature=1.0,
        ref_reset_steps=500,
    ),
    "deepscaler": GRPOPreset(
        name="deepscaler",
        stages=(
            LengthStage(8192, 8, 1040),
            LengthStage(16384, 16, 480),
            LengthStage(24576, 16, 230),
        ),
        learning_rate=1e-6,
        prompts_per_step=128,
        updates_per_step=2,
        beta=0.001,
        loss_type="dapo",
        scale_rewards="group",
        temperature=0.6,
        top_p=1.0,
    ),
    "dr_grpo": GRPOPreset(
        name="dr_grpo",
        stages=(LengthStage(3000, 8, 1000),),
        learning_rate=1e-6,
        prompts_per_step=128,
        beta=0.0,
        loss_type="dr_grpo",
        scale_rewards="none",
        temperature=1.0,
    ),
    "dapo": GRPOPreset(
        name="dapo",
        stages=(LengthStage(20480, 16, 1000),),
        learning_rate=1e-6,
        prompts_per_step=512,
        updates_per_step=16,
        beta=0.0,
        loss_type="dapo",
        scale_rewards="group",
        epsilon=0.2,
        epsilon_high=0.28,
        temperature=1.0,
        rewards=("accuracy", "overlong"),
        overlong_buffer=4096,
        warmup_ratio=0.02,
        weight_decay=0.1,
    ),
}


def preset(name: str, kind: Literal["sft", "grpo"] | None = None) -> Preset:
    """The preset called ``name`` (``kind`` checks that it is an SFT or a GRPO one)."""
    found = PRESETS.get(name)
    if found is None:
        raise ConfigError(f"unknown preset {name!r}; expected one of: {', '.join(PRESETS)}")
    want = {"sft": SFTPreset, "grpo": GRPOPreset}.get(kind or "")
    if want is not None and not isinstance(found, want):
        names = [n for n, p in PRESETS.items() if isinstance(p, want)]
        raise ConfigError(f"preset {name!r} is not a {kind} preset; expected one of: {names}")
    return found


def resolve(chosen: str | Preset, kind: Literal["sft", "grpo"], overrides: dict[str, Any]) -> Any:
    """The preset a trainer runs: ``chosen`` (a name or a preset of ``kind``) with
    ``overrides`` applied."""
    want = SFTPreset if kind == "sft" else GRPOPreset
    found = preset(chosen, kind) if isinstance(chosen, str) else chosen
    if not isinstance(found, want):
        raise ConfigError(f"preset={chosen!r}: expected a {kind} preset name or {want.__name__}")
    return with_overrides(found, overrides)


def with_overrides(base: Preset, overrides: dict[str, Any]) -> Preset:
    """``base`` with ``overrides`` applied; an unknown name is an error listing the fields.
    ``beta=0`` (no KL term) also drops the reference model's resets.

    >>> with_overrides(preset("deepseekmath"), {"beta": 0.0}).ref_reset_steps is None
    True
    """
    names = {f.name for f in fields(base)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for {type(base).__name__}; expected among: "
            f"{', '.join(sorted(names - {'name'}))}"
        )
    if overrides.get("beta") == 0 and "ref_reset_steps" not in overrides:
        overrides = {**overrides, "ref_reset_steps": None}  # no KL: no reference to reset
    if "stages" in overrides:
        overrides = {**overrides, "stages": tuple(_stage(s) for s in overrides["stages"])}
    return replace(base, **overrides)


def _stage(value: LengthStage | tuple[int, int, int] | dict[str, int]) -> LengthStage:
    if isinstance(value, LengthStage):
        return value
    if isinstance(value, dict):
        return LengthStage(**value)
    return LengthStage(*value)


__all__ = ["PRESETS", "GRPOPreset", "LengthStage", "Preset", "SFTPreset", "preset"]
