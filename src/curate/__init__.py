"""curate: curate LLM reasoning training data.

Public names are imported lazily, so ``import curate`` stays fast and pulls in
no heavy dependency (no torch, transformers, vllm or faiss; not even polars
until a name that needs it is used).

>>> import curate
>>> curate.__version__
'0.1.0'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from curate._lazy import attach
from curate._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "read": "curate.io",
    "Source": "curate.io",
    "Recipe": "curate.run",
    "Run": "curate.run",
    "open_run": "curate.run",
    "RunWarning": "curate.run",
    "Stage": "curate.stage",
    "Filter": "curate.stage",
    "StageContext": "curate.stage",
    "StageResult": "curate.stage",
    "RequireGradable": "curate.filters",
    "SQLFilter": "curate.filters",
    "ExactDedup": "curate.dedup.exact",
    "MinHashDedup": "curate.dedup.minhash",
    "SemanticDedup": "curate.dedup.semantic",
    "Mix": "curate.mix",
    "LanguageFilter": "curate.math_filters",
    "FigureFilter": "curate.math_filters",
    "MultipleChoiceFilter": "curate.math_filters",
    "ProofFilter": "curate.math_filters",
    "LengthFilter": "curate.math_filters",
    "QueryFilter": "curate.query_filters",
    "RepeatedNgrams": "curate.query_filters",
    "Perplexity": "curate.perplexity",
    "ExtractAnswer": "curate.answer_extract",
    "Decontaminate": "curate.decontam",
    "embed_texts": "curate.embed",
    "Distill": "curate.distill",
    "Grade": "curate.grade",
    "DeepDistillStageI": "curate.select",
    "DeepDistillStageII": "curate.select",
    "PassRateBand": "curate.select",
    "InfluenceSelect": "curate.influence.stage",
    "Synthesize": "curate.synth",
    "ExportOptions": "curate.export.shards",
    "export_run": "curate.export.shards",
    "Sampling": "curate.generate",
    "Generator": "curate.generate",
    "VLLMGenerator": "curate.generate.vllm",
    "OpenAIGenerator": "curate.generate.openai",
    "HFGenerator": "curate.generate.hf",
    "verify": "curate.verification",
    "verify_many": "curate.verification",
    "averify": "curate.verification",
    "gradable": "curate.verification",
    "extract_answer": "curate.verification",
    "Verdict": "curate.verification",
    "VerifyOptions": "curate.verification",
    "reward": "curate.reward",
    "train": "curate.train",
    "evaluate": "curate.evaluation",
    "EvalResult": "curate.evaluation",
    "CurateError": "curate.errors",
    "InputError": "curate.errors",
    "ConfigError": "curate.errors",
    "RunError": "curate.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from curate import reward, train
    from curate.answer_extract import ExtractAnswer
    from curate.decontam import Decontaminate
    from curate.dedup.exact import ExactDedup
    from curate.dedup.minhash import MinHashDedup
    from curate.dedup.semantic import SemanticDedup
    from curate.distill import Distill
    from curate.embed import embed_texts
    from curate.errors import ConfigError, CurateError, InputError, RunError
    from curate.evaluation import EvalResult, evaluate
    from curate.export.shards import ExportOptions, export_run
    from curate.filters import RequireGradable, SQLFilter
    from curate.generate import Generator, Sampling
    from curate.generate.hf import HFGenerator
    from curate.generate.openai import OpenAIGenerator
    from curate.generate.vllm import VLLMGenerator
    from curate.grade import Grade
    from curate.influence.stage import InfluenceSelect
    from curate.io import Source, read
    from curate.math_filters import (
        FigureFilter,
        LanguageFilter,
        LengthFilter,
        MultipleChoiceFilter,
        ProofFilter,
    )
    from curate.mix import Mix
    from curate.perplexity import Perplexity
    from curate.query_filters import QueryFilter, RepeatedNgrams
    from curate.run import Recipe, Run, RunWarning, open_run
    from curate.select import DeepDistillStageI, DeepDistillStageII, PassRateBand
    from curate.stage import Filter, Stage, StageContext, StageResult
    from curate.synth import Synthesize
    from curate.verification import (
        Verdict,
        VerifyOptions,
        averify,
        extract_answer,
        gradable,
        verify,
        verify_many,
    )


__getattr__, __dir__ = attach("curate", _EXPORTS, globals(), __all__)
