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

        gen = _generator(f"{self.seed}:{index}")
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

        _check_rows(self, x)
        out = torch.zeros(x.size(0), self.k, dtype=torch.float32, device=x.device)
        for start in range(0, self.dim, self.block_rows):
            block = self.block(start).to(x.device)
            out += x[:, start : start + block.size(0)].to(torch.float32) @ block
        return out


class HadamardProjection:
    """``x -> sqrt(1/k) * (H D x)[S]``: random signs ``D``, a Walsh-Hadamard transform ``H``
    (unnormalised, over ``x`` padded with zeros to a power of two ``n``) and ``k`` of its
    ``n`` coordinates ``S`` drawn without replacement: the subsampled randomised Hadamard
    transform, a Johnson-Lindenstrauss projection that needs no matrix.

    It costs ``O(n log n)`` per row and ``n`` bytes of state, where a dense Rademacher
    matrix costs ``dim * k`` numbers to make or keep: for a large model's LoRA gradients
    (millions of numbers per row) it is the one that fits. Signs and coordinates are drawn
    on the CPU from ``seed``.

    >>> import torch
    >>> p = HadamardProjection(1000, 64, seed=0)
    >>> x = torch.nn.functional.normalize(torch.randn(2, 1000), dim=1)
    >>> p(x).shape, bool(abs(p(x).norm(dim=1) - 1).max() < 0.5)
    (torch.Size([2, 64]), True)
    """

    def __init__(self, dim: int, k: int = 8192, *, seed: int = 0, device: Any = None) -> None:
        import torch

        if dim < 1 or k < 1:
            raise ConfigError(f"HadamardProjection(dim={dim}, k={k}): expected positive sizes")
        self.dim, self.k, self.seed = dim, k, seed
        self.n = 1 << max(dim - 1, k - 1, 1).bit_length()
        gen = _generator(f"hadamard:{seed}")
        signs = torch.randint(0, 2, (self.n,), generator=gen, dtype=torch.int8)
        self.signs = (signs.to(torch.float32) * 2 - 1).to(device)
        self.coords = _sample_without_replacement(self.n, k, gen).to(device)

    def __call__(self, x: Any) -> Any:
        """Project ``x`` of shape ``(rows, dim)`` to ``(rows, k)`` (float32)."""
        import torch

        _check_rows(self, x)
        signs = self.signs.to(x.device)
        y = torch.zeros(x.size(0), self.n, dtype=torch.float32, device=x.device)
        y[:, : self.dim] = x.to(torch.float32) * signs[: self.dim]
        y = walsh_hadamard(y)
        return y[:, self.coords.to(x.device)] / math.sqrt(self.k)


def walsh_hadamard(x: Any) -> Any:
    """The unnormalised Walsh-Hadamard transform of each row of ``x`` (a power-of-two
    width), in ``log2(width)`` passes of sums and differences.

    >>> import torch
    >>> walsh_hadamard(torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
    tensor([[1., 1., 1., 1.],
            [4., 0., 0., 0.]])
    """
    import torch

    rows, n = x.shape
    if n & (n - 1):
        raise ConfigError(f"walsh_hadamard: width {n} is not a power of two")
    h = 1
    while h < n:
        pairs = x.view(rows, n // (2 * h), 2, h)
        x = torch.stack((pairs[:, :, 0] + pairs[:, :, 1], pairs[:, :, 0] - pairs[:, :, 1]), dim=2)
        x = x.view(rows, n)
        h *= 2
    return x


def _sample_without_replacement(n: int, k: int, gen: Any) -> Any:
    """``k`` distinct integers below ``n``, sorted, drawn from ``gen`` (no permutation of
    all ``n`` when ``k`` is much smaller)."""
    import torch

    if k * 4 >= n:
        return torch.randperm(n, generator=gen)[:k].sort().values
    chosen = torch.empty(0, dtype=torch.long)
    while chosen.numel() < k:
        draw = torch.randint(0, n, (2 * k,), generator=gen)
        merged = torch.cat([chosen, draw])
        # keep first occurrences in draw order, so the result depends only on the seed
        values, first = _first_occurrences(merged)
        chosen = values[first.argsort()][:k]
    return chosen.sort().values


def _first_occurrences(values: Any) -> tuple[Any, Any]:
    """The distinct values and the index of each one's first occurrence."""
    import torch

    unique, inverse = torch.unique(values, return_inverse=True)
    first = torch.full((unique.numel(),), values.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(values.numel()), reduce="amin")
    return unique, first


def _generator(label: str) -> Any:
    """A CPU torch generator seeded from ``label`` (the same draws on every machine)."""
    import torch

    key = hashlib.blake2b(label.encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(key, "little") & (2**63 - 1))


def _check_rows(projection: RademacherProjection | HadamardProjection, x: Any) -> None:
    if x.dim() != 2 or x.size(1) != projection.dim:
        raise ConfigError(
            f"{type(projection).__name__}: expected a (n, {projection.dim}) tensor, got "
            f"{tuple(x.shape)}"
        )
