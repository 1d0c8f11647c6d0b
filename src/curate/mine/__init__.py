"""Corpus mining, DeepSeekMath style: a fastText page classifier (`train_classifier`,
`Classifier`), the stages that score and keep pages (`ClassifierScore`, `KeepTop`), the
domain report and confirmed URL paths (`domain_report`, `under_paths`), and the loop that
iterates them (`mine`). Needs the ``mine`` extra (``fasttext-numpy2-wheel``) to train or
score; importing this package does not import fastText.
"""

from curate.mine.classifier import Classifier, FastTextOptions, Trained, train_classifier
from curate.mine.decontam import SegmentDecontaminate
from curate.mine.domains import MIN_SHARE, domain, domain_report, location, under_paths
from curate.mine.loop import Iteration, MineResult, mine
from curate.mine.normalize import normalize
from curate.mine.source import Mined
from curate.mine.stages import ClassifierScore, KeepTop

__all__ = [
    "MIN_SHARE",
    "Classifier",
    "ClassifierScore",
    "FastTextOptions",
    "Iteration",
    "KeepTop",
    "MineResult",
    "Mined",
    "SegmentDecontaminate",
    "Trained",
    "domain",
    "domain_report",
    "location",
    "mine",
    "normalize",
    "train_classifier",
    "under_paths",
]
