"""A seeded random projection of gradient features, chunk by chunk (no projector package).

LESS projects each example's LoRA gradient to 8,192 numbers with a Rademacher matrix
(entries ``±1/sqrt(k)``), which keeps inner products and norms within the
Johnson-Lindenstrauss bound. The matrix for a 1.5B model's LoRA (tens of millions of rows
by 8,192) is too large to hold, so it is made in blocks of rows, each from its own seed
``(seed, block)``: the same seed gives the same matrix on any machine and device (blocks are
drawn on the CPU), whatever the batch, and a block can be kept (``cache=True``) or made
again for each batch.

>>> import torch
>>> p = RademacherProjection(1000, 64, seed=0)
>>> x = torch.randn(3, 1000)
>>> p(x).shape
torch.Size([3, 64])
>>> bool(torch.allclose(p(x), RademacherProjection(1000, 64, seed=0, block_rows=300)(x), atol=1e-5))
True
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from curate.errors import ConfigError


class RademacherProjection:
    """``x -> x @ R`` for a ``(dim, k)`` matrix ``R`` of ``±1/sqrt(k)`` entries drawn from
    ``seed``; a row's entries depend only on ``seed`` and the row (not on ``block_rows``,
    the number of rows made at a time), so any chunking gives the same matrix."""

    _ROWS_PER_SEED = 256  # rows drawn from one generator seed: the unit any block is made of

    def __init__(
        self,
        dim: int,
        k: int = 8192,
        *,
        seed: int = 0,
        block_rows: int = 4096,
        cache: bool = False,
        device: Any = None,
    ) -> None:
        if dim < 1 or k < 1 or block_rows < 1:
            raise ConfigError(
                f"RademacherProjection(dim={dim}, k={k}, block_rows={block_rows}): expected "
                "positive sizes"
            )
        self.dim, self.k, self.seed = dim, k, seed
        unit = self._ROWS_PER_SEED
        self.block_rows = max(unit, (block_rows // unit) * unit)
        self.cache, self.device = cache, device
        self._blocks: dict[int, Any] = {}

    def _unit(self, index: int) -> Any:
        import torch

        key = hashlib.blake2b(f"{self.seed}:{index}".encode(), digest_size=8).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(key, "little") & (2**63 - 1))
        rows = min(self._ROWS_PER_SEED, self.dim - index * self._ROWS_PER_SEED)
        bits = torch.randint(0, 2, (rows, self.k), generator=gen, dtype=torch.int8)
        return bits

    def block(self, start: int) -> Any:
        """The rows ``start : start + block_rows`` of ``R`` (float32, on ``device``)."""
        import torch

        if start in self._blocks:
            return self._blocks[start]
        unit = self._ROWS_PER_SEED
        end = min(self.dim, start + self.block_rows)
        bits = torch.cat([self._unit(i) for i in range(start // unit, math.ceil(end / unit))])
        scale = 1.0 / math.sqrt(self.k)
        matrix = (bits.to(torch.float32) * (2 * scale) - scale).to(self.device)
        if self.cache:
            self._blocks[start] = matrix
        return matrix

    def __call__(self, x: Any) -> Any:
        """Project ``x`` of shape ``(n, dim)`` to ``(n, k)`` (float32)."""
        import torch

        if x.dim() != 2 or x.size(1) != self.dim:
            raise ConfigError(
                f"RademacherProjection: expected a (n, {self.dim}) tensor, got {tuple(x.shape)}"
            )
        out = torch.zeros(x.size(0), self.k, dtype=torch.float32, device=x.device)
        for start in range(0, self.dim, self.block_rows):
            block = self.block(start).to(x.device)
            out += x[:, start : start + block.size(0)].to(torch.float32) @ block
        return out
