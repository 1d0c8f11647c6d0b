"""Test-session settings shared by every test file.

`datasets` caches what it loads under a key derived from the data files' paths and sizes;
test folders are reused across sessions, so a stale cache could answer for new files. Each
session (each xdist worker) gets its own cache, and nothing may reach the Hub.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="curate-test-hf-datasets-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`curate.toy`'s model trained for 300 steps (about 20 s; the answer format is learnt
    well before), once per session (per xdist worker) for every test file that uses it."""
    pytest.importorskip("transformers")
    from curate.toy import toy_model

    return toy_model(tmp_path_factory.getbasetemp() / "toy-300", steps=300)
