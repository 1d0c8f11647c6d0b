"""`curate.arrays.take`: rows of a .npy file by plain reads, sparse or dense."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curate import arrays


@pytest.mark.parametrize("wanted", [3, 200, 5_000])  # runs of preads, and blocks
def test_take_gives_the_rows_numpy_gives(
    tmp_path: Path, wanted: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arrays, "_BLOCK", 4096)  # several blocks on the dense path
    values = np.random.default_rng(wanted).integers(0, 1 << 31, (5_000, 7)).astype(np.uint32)
    path = tmp_path / "v.npy"
    np.save(path, values)
    positions = np.random.default_rng(1).integers(0, 5_000, wanted)
    assert np.array_equal(arrays.take(str(path), positions), values[positions])
    assert np.array_equal(arrays.take(str(path)), values)
    assert arrays.shape(str(path)) == (5_000, 7)


def test_take_refuses_rows_outside_the_file(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.arange(4))
    with pytest.raises(IndexError, match=r"rows outside 0\.\.3"):
        arrays.take(str(path), np.array([4]))
