"""Gradient-influence data selection (JiuZhang3.0, LESS): the parts that need no training.

- `gradients`: per-example gradients of the trainable linear layers (LoRA) for a whole
  batch in one backward pass;
- `projection`: a seeded Rademacher projection made block by block, and the subsampled
  randomised Hadamard transform for gradients too long for a matrix;
- `scores`: Adam's update direction for training examples and LESS's influence score.

torch is imported only when these are called.
"""

from curate.influence.gradients import (
    Layer,
    example_losses,
    gradient_dim,
    per_example_gradients,
    trainable_layers,
)
from curate.influence.projection import HadamardProjection, RademacherProjection
from curate.influence.scores import adam_direction, influence, normalize_rows

__all__ = [
    "HadamardProjection",
    "Layer",
    "RademacherProjection",
    "adam_direction",
    "example_losses",
    "gradient_dim",
    "influence",
    "normalize_rows",
    "per_example_gradients",
    "trainable_layers",
]
