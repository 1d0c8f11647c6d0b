"""Training on curate's shards: a thin layer over TRL (``SFTTrainer``, ``GRPOTrainer``),
peft and accelerate (``pip install 'curate[train]'``).

curate supplies the data (its exports, read unchanged), the reward (`curate.reward`), the
presets of the papers (`curate.train.presets`) and the schedule (iterative context
lengthening); TRL supplies the objectives, the loss normalisation, LoRA and vLLM generation.

- `sft`: supervised fine-tuning on an ``sft``/``trl`` export (DeepDistill's two stages);
- `grpo`: GRPO on an ``rl``/``verl``/``trl`` export with curate's verifier reward
  (DeepSeekMath, DeepScaleR with its context lengthening, Dr. GRPO, DAPO).

Nothing heavy is imported until a trainer runs.

>>> from curate.train import PRESETS
>>> sorted(PRESETS)[:2]
['dapo', 'deepdistill-stage1']
"""

from __future__ import annotations

from curate.train.presets import PRESETS, GRPOPreset, LengthStage, SFTPreset, preset
from curate.train.rl import grpo
from curate.train.session import TrainingError, TrainResult
from curate.train.supervised import sft

__all__ = [
    "PRESETS",
    "GRPOPreset",
    "LengthStage",
    "SFTPreset",
    "TrainResult",
    "TrainingError",
    "grpo",
    "preset",
    "sft",
]
