"""A fastText page classifier: trained from positive and negative pages, scoring pages by the
probability that they are math.

DeepSeekMath's settings are the defaults (`FastTextOptions`): vector dimension 256,
learning rate 0.1, word n-grams up to 3, words seen at least 3 times, 3 epochs. Text goes
through `curate.mine.normalize` both ways. Training writes the examples to a file in a
seeded shuffled order and trains with one thread by default, so the same pages give the
same model on one machine. The wheel is ``fasttext-numpy2-wheel`` (the plain ``fasttext``
wheels break under NumPy 2), in the ``mine`` extra.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import ConfigError, CurateError
from curate.mine.normalize import normalize

POSITIVE, NEGATIVE = "__label__math", "__label__other"


def require_fasttext() -> Any:
    """The fasttext module, or an error that says how to install it."""
    try:
        import fasttext
    except ImportError:
        raise CurateError(
            "corpus mining needs fastText: pip install 'curate[mine]' (the "
            "fasttext-numpy2-wheel package)"
        ) from None
    return fasttext


@dataclass(frozen=True)
class FastTextOptions:
    """fastText's supervised training options (DeepSeekMath's by default). ``bucket`` is
    fastText's hash table of word n-grams: 2M rows of ``dim`` floats (2 GB at dim 256);
    lower it for small corpora and tests."""

    dim: int = 256
    lr: float = 0.1
    word_ngrams: int = 3
    min_count: int = 3
    epoch: int = 3
    bucket: int = 2_000_000
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "word_ngrams", "min_count", "epoch", "bucket", "threads"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"FastTextOptions({name}={value!r}): expected an integer >= 1")
        if not self.lr > 0:
            raise ConfigError(f"FastTextOptions(lr={self.lr}): expected > 0")

    def fasttext_args(self) -> dict[str, Any]:
        return {
            "dim": self.dim, "lr": self.lr, "wordNgrams": self.word_ngrams,
            "minCount": self.min_count, "epoch": self.epoch, "bucket": self.bucket,
            "thread": self.threads, "seed": self.seed, "verbose": 0,
        }  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Trained:
    """A classifier file and how it was trained: the learning rate that converged."""

    path: Path
    positives: int
    negatives: int
    lr: float


SMALL_TRAINING = 50_000
"""Below this many pages, 3 epochs leave a classifier untrained (a warning says so)."""

NAN_RETRIES = 3
"""fastText sometimes stops with "Encountered NaN" (its issues #385, #1278): on small
training sets, and here erratically, more often in a long-lived busy process than in a fresh
one. Training runs in a child process (a fastText abort cannot take the caller down); a NaN
is tried again once at the same rate in a fresh child, then at half the rate, this many
times in all."""

_CHILD = """
import json, sys
import fasttext
data, out, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
try:
    model = fasttext.train_supervised(input=data, **args)
except RuntimeError as e:
    print(str(e), file=sys.stderr)
    sys.exit(3)
model.save_model(out)
"""


def _train_in_child(data: Path, out: Path, args: dict[str, Any]) -> str | None:
    """Train in a fresh Python process; None when it worked, else fastText's error."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data), str(out), json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0 and out.is_file():
        return None
    lines = (done.stderr or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def train_classifier(
    positives: Iterable[str],
    negatives: Iterable[str],
    out: str | Path,
    *,
    options: FastTextOptions | None = None,
) -> Trained:
    """Train a classifier on page texts and save it to ``out`` (a ``.bin`` file, written
    atomically). A training that ends in NaN is tried again at half the learning rate (up
    to `NAN_RETRIES` times); the rate used is in the result."""
    require_fasttext()
    options = options or FastTextOptions()
    lines = [f"{POSITIVE} {t}" for t in map(normalize, positives) if t]
    n_pos = len(lines)
    lines += [f"{NEGATIVE} {t}" for t in map(normalize, negatives) if t]
    if n_pos == 0 or n_pos == len(lines):
        raise ConfigError(
            f"a classifier needs positive and negative pages with text; got {n_pos} positive "
            f"and {len(lines) - n_pos} negative"
        )
    if len(lines) < SMALL_TRAINING and options.epoch <= 3:
        warnings.warn(
            f"training on {len(lines):,} pages with {options.epoch} epochs: DeepSeekMath's "
            "settings are for about a million pages, and on a few thousand every score stays "
            "near 0.5; pass FastTextOptions(epoch=25) (benchmarks/RESULTS.md)",
            RuntimeWarning,
            stacklevel=2,
        )
    random.Random(options.seed).shuffle(lines)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        data = Path(tmp) / "train.txt"
        data.write_text("\n".join(lines) + "\n", encoding="utf-8")
        args = options.fasttext_args()
        partial = Path(tmp) / out.name
        for attempt in range(NAN_RETRIES + 1):
            error = _train_in_child(data, partial, args)
            if error is None:
                break
            if "NaN" not in error or attempt == NAN_RETRIES:
                raise CurateError(
                    f"fastText training failed ({error}) at learning rate {args['lr']}, with "
                    f"{n_pos} positive and {len(lines) - n_pos} negative pages; lower lr "
                    "or train on more pages"
                )
            if attempt:  # the first retry is at the same rate, in a fresh process
                args["lr"] /= 2
        os.replace(partial, out)
    return Trained(out, n_pos, len(lines) - n_pos, args["lr"])


class Classifier:
    """A trained classifier: `scores` gives each page's probability of being math."""

    def __init__(self, path: str | Path) -> None:
        fasttext = require_fasttext()
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"no classifier at {self.path}; train one with train_classifier")
        self.model = fasttext.load_model(str(self.path))
        if POSITIVE not in self.model.get_labels():
            raise ConfigError(f"{self.path} is not a math page classifier (no {POSITIVE} label)")

    def scores(self, texts: Sequence[str | None]) -> np.ndarray:
        """P(math) of each page (0 for a page with no text)."""
        normal = [normalize(t) if t else "" for t in texts]
        out = np.zeros(len(normal), dtype=np.float64)
        which = [i for i, t in enumerate(normal) if t]
        if which:
            labels, probs = self.model.predict([normal[i] for i in which], k=2)
            for i, lab, pr in zip(which, labels, probs, strict=True):
                out[i] = dict(zip(lab, pr, strict=True)).get(POSITIVE, 0.0)
        return np.clip(out, 0.0, 1.0)


@lru_cache(maxsize=4)
def load_classifier(path: str, mtime: float) -> Classifier:
    """A classifier loaded once per process and file version (stages score many batches)."""
    del mtime  # part of the cache key: a retrained file is loaded again
    return Classifier(path)
