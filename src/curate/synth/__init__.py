"""Problem synthesis from texts (JiuZhang3.0): the prompts, the parser of a model's output,
and `Synthesize`, the source that writes new problems in a run.

`import curate.synth` imports no inference engine: generators are passed in.
"""

from curate.synth.parse import REASONS, Parsed, latin_share, parse
from curate.synth.prompts import EDUCATION_STAGES, PROMPT_VERSION, TEMPLATE, Prompts
from curate.synth.source import CACHE, Synthesize, kd_pairs, render

__all__ = [
    "CACHE",
    "EDUCATION_STAGES",
    "PROMPT_VERSION",
    "REASONS",
    "TEMPLATE",
    "Parsed",
    "Prompts",
    "Synthesize",
    "kd_pairs",
    "latin_share",
    "parse",
    "render",
]
