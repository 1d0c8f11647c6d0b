"""Test-session settings shared by every test file.

`datasets` caches what it loads under a key derived from the data files' paths and sizes;
test folders are reused across sessions, so a stale cache could answer for new files. Each
session (each xdist worker) gets its own cache, and nothing may reach the Hub.
"""

from __future__ import annotations

import os
import tempfile

os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="curate-test-hf-datasets-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
