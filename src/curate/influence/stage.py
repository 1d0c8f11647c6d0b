r"""`InfluenceSelect`: keep the rows whose training signal points the way of a target task
(LESS, JiuZhang3.0's gradient-based selection), or by one of the baselines it must beat.

``method="influence"`` (LESS):

1. **Warm-up.** A LoRA adapter on ``model`` is trained on a random ``warmup`` share of the
   rows (``curate.train.sft``, preset ``less-warmup``: 4 epochs, a checkpoint per epoch),
   or ``checkpoints=`` names a training folder that holds them already;
   ``warmup_overrides`` changes the preset's fields (``learning_rate=``, ``epochs=``...).
2. **Features.** At each checkpoint, every row's (problem, solution) gradient of the LoRA
   parameters, turned into Adam's update direction with the checkpoint's moments, and every
   target example's plain gradient, projected to ``dim`` numbers and L2-normalised
   (`curate.influence`): by a seeded Rademacher matrix as LESS does, or, where that matrix
   would not fit in 2 GiB (``projection="auto"``), by a subsampled randomised Hadamard
   transform, a Johnson-Lindenstrauss projection that needs no matrix. They are cached in
   the run by model, checkpoint, settings and text: a new budget or target computes no row
   twice.
3. **Score.** ``influence`` = max over target subtasks of the sum over checkpoints of the
   checkpoint's mean learning rate times the mean cosine to the subtask's examples.

Baselines, at the same budget: ``method="embedding"`` scores by the mean cosine to the
target of the last hidden state of ``model``, mean-pooled with weights growing with the
position (RDS+, which Ivison et al. 2025 found hard to beat), or, with
``embedding="minilm"``, of MiniLM sentence embeddings; ``method="random"`` by a seeded
uniform draw.

Selection keeps the ``budget`` best rows (a share in (0, 1), LESS's 5% by default, or a
count), over the table or per ``source``; the others are rejected as ``not_selected``
with their score and rank. Rows without a solution cannot be scored and are rejected as
``no_solution``.

Target: a bundled benchmark name (its problems and answers; the completion is "The answer
is \boxed{answer}."), or a file `curate.read` reads (its ``solution`` where there is one);
several (a list, or a mapping from subtask name to either) are subtasks.

The stage runs as one global step over the texts (the gradients need them) on this
machine, on ``device`` (a GPU when given).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from curate.errors import ConfigError, InputError
from curate.stage import Filter, StageContext

Method = Literal["influence", "embedding", "random"]
LESS_LORA: dict[str, Any] = {
    "r": 128,
    "lora_alpha": 512,
    "lora_dropout": 0.1,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
"""LESS's warm-up adapter."""


@dataclass(frozen=True)
class InfluenceSelect(Filter):
    """Select rows by gradient influence on a target (LESS) or by a baseline; see the module
    documentation.

    >>> InfluenceSelect(model="m", target="gsm8k", budget=0.05).name
    'influence_select'
    >>> InfluenceSelect(model="m", target="gsm8k", budget=1.5)
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: InfluenceSelect(budget=1.5): expected a share in (0, 1) or a whole number of rows >= 1
    """  # noqa: E501

    # 2: RDS+'s position-weighted mean pool (was a plain mean)
    version: ClassVar[str] = "2"
    model: str
    target: str | Sequence[str] | Mapping[str, str]
    budget: float | int = 0.05
    method: Method = "influence"
    embedding: Literal["hidden", "minilm"] = "hidden"
    per_source: bool = False
    checkpoints: str | None = None
    warmup: float = 0.05
    warmup_preset: str = "less-warmup"
    warmup_overrides: Mapping[str, Any] = field(default_factory=dict)
    lora: Mapping[str, Any] = field(default_factory=lambda: dict(LESS_LORA))
    dim: int = 8192
    projection: Literal["auto", "rademacher", "hadamard"] = "auto"
    template: str = "{problem}"
    max_length: int = 1024
    batch_size: int = 8
    seed: int = 0
    device: str | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        b = self.budget
        whole = isinstance(b, int) and not isinstance(b, bool) and b >= 1
        if not (whole or (isinstance(b, float) and 0 < b < 1)):
            raise ConfigError(
                f"InfluenceSelect(budget={b!r}): expected a share in (0, 1) or a whole number "
                "of rows >= 1"
            )
        if self.method not in ("influence", "embedding", "random"):
            raise ConfigError(
                f"InfluenceSelect(method={self.method!r}): expected influence, embedding or random"
            )
        if not 0 < self.warmup <= 1:
            raise ConfigError(f"InfluenceSelect(warmup={self.warmup}): expected a share in (0, 1]")
        if "{problem}" not in self.template:
            raise ConfigError(f"InfluenceSelect(template={self.template!r}): no {{problem}}")
        if self.embedding not in ("hidden", "minilm"):
            raise ConfigError(
                f"InfluenceSelect(embedding={self.embedding!r}): expected hidden or minilm"
            )
        if self.projection not in ("auto", "rademacher", "hadamard"):
            raise ConfigError(
                f"InfluenceSelect(projection={self.projection!r}): expected auto, rademacher "
                "or hadamard"
            )
        for name in ("dim", "batch_size", "max_length"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"InfluenceSelect({name}={value!r}): expected an integer >= 1")

    def reads(self) -> tuple[str, ...]:
        return ("problem", "solution", "source")

    def adds(self) -> tuple[str, ...]:
        return ("influence", "influence_subtask")

    # ------------------------------------------------------------------ the global step

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        from curate.influence.features import Example

        has = table["solution"].is_not_null() & (table["solution"].str.strip_chars() != "")
        rows = table.filter(has)
        examples = [
            Example(self.template.format(problem=p), s)
            for p, s in rows.select("problem", "solution").iter_rows()
        ]
        targets = self._targets()
        if self.method == "random":
            from curate.select import uniform

            scores = np.array([uniform(self.seed, i) for i in rows["id"]])
            which = ["-"] * rows.height
        else:
            scores, which = self._cached_scores(rows, examples, targets, ctx)
        scored = rows.select("id").with_columns(
            pl.Series("influence", scores, dtype=pl.Float64),
            pl.Series("influence_subtask", which, dtype=pl.String),
        )
        out = table.join(scored, on="id", how="left", maintain_order="left")
        out = self._select(out)
        ctx.stats.update(
            method=self.method,
            scored=rows.height,
            selected=int(out["_selected"].sum()),
            subtasks=list(targets),
        )
        unscored = pl.col("influence").is_null()
        marked = self.mark(out.lazy(), unscored, "no_solution", "no solution to score")
        detail = pl.format(
            "{} {} (rank {} of {})",
            pl.lit(self.method),
            pl.col("influence").round(6),
            pl.col("_rank"),
            pl.col("_of"),
        )
        marked = self.mark(marked, ~pl.col("_selected"), "not_selected", detail)
        return marked.drop("_selected", "_rank", "_of").collect()

    def _select(self, table: pl.DataFrame) -> pl.DataFrame:
        """``_selected``, ``_rank`` (1 = best, ties in table order; null for unscored rows)
        and ``_of`` (scored rows) per group."""
        group = ["source"] if self.per_source else []
        over = pl.col("influence").is_not_null()
        ranked = table.with_columns(
            pl.col("influence").rank("ordinal", descending=True).over(group or pl.lit(1))
            .alias("_rank"),
            over.sum().over(group or pl.lit(1)).alias("_of"),
        )  # fmt: skip
        b = self.budget
        keep = (  # a share: LESS's floor, and at least one row of each group
            pl.col("_of").cast(pl.Float64).mul(b).floor().cast(pl.Int64).clip(lower_bound=1)
            if isinstance(b, float)
            else pl.lit(int(b))
        )
        return ranked.with_columns((over & (pl.col("_rank") <= keep)).alias("_selected"))

    # ------------------------------------------------------------------ targets

    def _targets(self) -> dict[str, list[Any]]:
        """Each subtask's examples, by name."""
        spec = self.target
        if isinstance(spec, Mapping):
            named = dict(spec)
        else:
            items = [spec] if isinstance(spec, str) else list(spec)
            names = [Path(s).stem if Path(s).exists() else s for s in items]
            if len(set(names)) != len(names):
                raise ConfigError(
                    f"InfluenceSelect(target={items}): two targets are both named by "
                    f"{names}; give a mapping from subtask name to target instead"
                )
            named = dict(zip(names, items, strict=True))
        if not named:
            raise ConfigError("InfluenceSelect(target=...): no target given")
        return {name: self._target_examples(s) for name, s in named.items()}

    def _target_examples(self, spec: str) -> list[Any]:
        from curate.influence.features import Example

        path = Path(spec)
        if path.exists():
            from curate.io import read

            frame = read(path, source="target").frame()
            pairs = frame.select("problem", "solution", "answer").iter_rows()
            out = [
                Example(self.template.format(problem=p), s if s and s.strip() else _boxed(a))
                for p, s, a in pairs
                if (s and s.strip()) or (a and a.strip())
            ]
        else:
            from curate.decontam.registry import load_benchmark

            items = load_benchmark(spec).items.unique("id", keep="first", maintain_order=True)
            out = [
                Example(self.template.format(problem=p), _boxed(a))
                for p, a in items.select("problem", "answer").iter_rows()
                if a
            ]
        if not out:
            raise ConfigError(f"InfluenceSelect: target {spec!r} has no example with a solution")
        return out

    # ------------------------------------------------------------------ scores

    def _embedding_scores(
        self, examples: list[Any], targets: dict[str, list[Any]], ctx: StageContext
    ) -> tuple[np.ndarray, list[str]]:
        import torch

        from curate.influence.features import hidden_compute
        from curate.influence.scores import influence

        if self.embedding == "minilm":
            from curate.embed import embed_texts

            def vectors(xs: list[Any]) -> Any:
                texts = [f"{e.prompt}\n{e.completion}" for e in xs]
                return torch.from_numpy(embed_texts(texts, cache_dir=ctx.cache_dir))

            rows, subtasks = vectors(examples), {n: vectors(t) for n, t in targets.items()}
        else:
            model, tok = self._base()
            get = self._feature_getter(hidden_compute(model), tok, ctx, kind="hidden-weighted")
            rows = get(examples)
            subtasks = {n: get(t) for n, t in targets.items()}
        scores, which = influence([rows], [subtasks], [1.0])
        return scores.numpy(), which

    def _cached_scores(
        self,
        rows: pl.DataFrame,
        examples: list[Any],
        targets: dict[str, list[Any]],
        ctx: StageContext,
    ) -> tuple[np.ndarray, list[str]]:
        """The rows' scores, from the run's cache when every row has one for these settings
        and targets (a new budget or ``per_source`` only ranks again: no model, no
        features), else computed and stored. Scores are kept as float32 either way, so a
        fresh run and a re-run agree to the bit."""
        from curate.embed import VectorCache

        names = list(targets)
        settings = [
            self.method, self.embedding, self._model_key(), self.dim, self.seed,
            self.max_length, {n: [e.key for e in t] for n, t in targets.items()},
            self.projection,
        ]  # fmt: skip
        plan = None  # the warm-up's key and rows, when it trains one
        if self.method == "influence" and self.checkpoints is not None:
            from curate.influence.checkpoints import checkpoints

            settings.append([_checkpoint_stamp(c.path) for c in checkpoints(self.checkpoints)])
        elif self.method == "influence":
            plan = self._warmup_plan(rows, examples)
            settings.append(plan[0])
        cache = VectorCache(ctx.cache_dir / "influence" / f"scores-{_digest(settings)}")
        keys = [e.key for e in examples]
        found = cache.lookup(keys)
        if any(k not in found for k in keys):
            if self.method == "embedding":
                computed, which = self._embedding_scores(examples, targets, ctx)
            else:
                computed, which = self._influence_scores(examples, targets, ctx, plan)
            vectors = np.stack([computed, [names.index(w) for w in which]], axis=1)
            found = dict(zip(keys, vectors.astype(np.float32), strict=True))
            cache.store(list(found), np.stack(list(found.values())))
        else:
            ctx.stats["scores_cached"] = len(keys)
        table = np.stack([found[k] for k in keys]) if keys else np.zeros((0, 2), np.float32)
        return table[:, 0].astype(np.float64), [names[int(i)] for i in table[:, 1]]

    def _influence_scores(
        self,
        examples: list[Any],
        targets: dict[str, list[Any]],
        ctx: StageContext,
        plan: tuple[str, list[int]] | None,
    ) -> tuple[np.ndarray, list[str]]:
        """LESS's scores at the given checkpoints, or at the warm-up's (``plan``)."""
        from curate.influence.checkpoints import checkpoints
        from curate.influence.scores import influence

        given = self.checkpoints
        found = checkpoints(given if given is not None else self._warmup(plan, examples, ctx))
        ctx.stats["checkpoints"] = [
            {"step": c.step, "learning_rate": c.learning_rate} for c in found
        ]
        train, subtasks = [], []
        for checkpoint in found:
            get_train, get_target = self._gradient_getters(checkpoint.path, ctx)
            train.append(get_train(examples))
            subtasks.append({n: get_target(t) for n, t in targets.items()})
        scores, which = influence(train, subtasks, [c.learning_rate for c in found])
        return scores.numpy(), which

    def _warmup(self, plan: Any, examples: list[Any], ctx: StageContext) -> Path:
        """Train the warm-up adapter on the rows of its ``plan`` (once: the same settings
        find the finished training in the run's cache)."""
        from curate.train import sft

        key, picked = plan
        folder = ctx.cache_dir / "influence" / f"warmup-{key}"
        data = _write_sft_export(folder / "data", [examples[i] for i in picked])
        sft(
            data, self.model, folder / "train", preset=self.warmup_preset, lora=dict(self.lora),
            save="epoch", seed=self.seed, threads=self.threads, progress=ctx.progress,
            **self._warmup_options(len(picked)),
        )  # fmt: skip
        ctx.stats["warmup_rows"] = len(picked)
        return folder / "train"

    def _warmup_plan(self, rows: pl.DataFrame, examples: list[Any]) -> tuple[str, list[int]]:
        """The warm-up's key (model, rows, settings) and its rows: a seeded ``warmup``
        share, drawn by id."""
        from curate.select import uniform

        ids = rows["id"].to_list()
        draws = sorted(range(rows.height), key=lambda i: uniform(self.seed, ids[i]))
        picked = sorted(draws[: max(1, math.ceil(self.warmup * rows.height))])
        key = _digest(
            [self._model_key(), [examples[i].key for i in picked], self.warmup_preset,
             dict(self.lora), self._warmup_options(len(picked)), self.seed]
        )  # fmt: skip
        return key, picked

    def _warmup_options(self, rows: int) -> dict[str, Any]:
        """What the warm-up's SFT gets besides its preset: batch sizes, length, overrides."""
        return {
            "max_length": self.max_length, "micro_batch": self.batch_size,
            "global_batch": _global_batch(self, rows), **self.warmup_overrides,
        }  # fmt: skip

    # ------------------------------------------------------------------ features

    def _base(self) -> tuple[Any, Any]:
        from transformers import AutoTokenizer

        from curate.influence.checkpoints import load_model

        model = load_model(self.model, device=self.device)
        return model, AutoTokenizer.from_pretrained(self.model)

    def _model_key(self) -> str:
        """The model's cache key: a digest of its files for a local folder; for a Hub name,
        the name (the same before and after transformers downloads it)."""
        from curate.embed import model_key

        if Path(self.model).is_dir():
            return model_key(self.model)
        if self.model.startswith((".", "/")) or self.model.count("/") > 1:
            raise ConfigError(
                f"InfluenceSelect(model={self.model!r}): no such model folder; expected a "
                "causal LM folder (save_pretrained) or a Hub name"
            )
        # a Hub name is its own key, downloaded or not (pin a revision by using a folder)
        return f"hub-{self.model.replace('/', '--')}"

    def _feature_getter(
        self, compute: Any, tokenizer: Any, ctx: StageContext, **settings: Any
    ) -> Callable[[list[Any]], Any]:
        import torch

        from curate.embed import VectorCache
        from curate.influence.features import features

        key = _digest({"model": self._model_key(), "max_length": self.max_length, **settings})
        cache = VectorCache(ctx.cache_dir / "influence" / f"features-{key}")

        def get(examples: list[Any]) -> Any:
            out = features(
                examples, compute, tokenizer, cache=cache, batch_size=self.batch_size,
                max_length=self.max_length, device=self.device, progress=ctx.progress,
            )  # fmt: skip
            return torch.from_numpy(out)

        return get

    def _gradient_getters(
        self, checkpoint: Path, ctx: StageContext
    ) -> tuple[Callable[[list[Any]], Any], Callable[[list[Any]], Any]]:
        """Features of training rows (Adam) and of targets (plain gradients) at a
        checkpoint; the model is loaded only when some example is not cached."""
        from transformers import AutoTokenizer

        from curate.influence.checkpoints import adam_moments, load_adapter
        from curate.influence.features import gradient_compute
        from curate.influence.gradients import gradient_dim
        from curate.influence.projection import HadamardProjection, RademacherProjection

        loaded: dict[str, Any] = {}

        def model() -> Any:
            if not loaded:
                m = load_adapter(self.model, checkpoint, device=self.device)
                dim = gradient_dim(m)
                fits = dim * self.dim * 4 <= 2**31  # a dense matrix kept in 2 GiB
                projection: Any
                if self.projection == "hadamard" or (self.projection == "auto" and not fits):
                    projection = HadamardProjection(
                        dim, self.dim, seed=self.seed, device=self.device
                    )
                else:
                    projection = RademacherProjection(
                        dim, self.dim, seed=self.seed, device=self.device, cache=fits
                    )
                loaded.update(model=m, projection=projection,
                              moments=adam_moments(m, checkpoint))  # fmt: skip
            return loaded

        def lazy(adam: bool) -> Callable[[Any, Any, Any], Any]:
            def compute(*batch: Any) -> Any:
                m = model()
                moments = m["moments"] if adam else None
                return gradient_compute(m["model"], m["projection"], moments)(*batch)

            return compute

        tok = AutoTokenizer.from_pretrained(self.model)
        stamp = _checkpoint_stamp(checkpoint)
        common = {
            "checkpoint": stamp, "dim": self.dim, "seed": self.seed, "projection": self.projection
        }  # fmt: skip
        return (
            self._feature_getter(lazy(True), tok, ctx, kind="adam", **common),
            self._feature_getter(lazy(False), tok, ctx, kind="sgd", **common),
        )


def _boxed(answer: str | None) -> str:
    return f"The answer is \\boxed{{{answer}}}." if answer else ""


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _checkpoint_stamp(path: Path) -> str:
    """The checkpoint's adapter weights and optimizer state, by size and a digest of the
    adapter (a re-trained checkpoint in the same folder gets new features)."""
    h = hashlib.blake2b(digest_size=8)
    for name in ("adapter_model.safetensors", "optimizer.pt"):
        file = path / name
        if not file.is_file():
            raise InputError(
                "a LESS checkpoint needs the LoRA adapter and the optimizer state it was "
                "trained with (save_only_model=False, lora=...)",
                path=file,
            )
        h.update(f"{name}\0{file.stat().st_size}\0".encode())
        if name.endswith(".safetensors"):
            h.update(file.read_bytes())
    return h.hexdigest()


def _global_batch(stage: InfluenceSelect, rows: int) -> int:
    """A global batch no larger than the warm-up set (a whole number of micro-batches)."""
    from curate.train.presets import preset

    wanted = getattr(preset(stage.warmup_preset, "sft"), "global_batch", 32)
    micro = stage.batch_size
    return max(micro, min(wanted, rows) // micro * micro)


def _write_sft_export(folder: Path, examples: Sequence[Any]) -> Path:
    """The warm-up rows as an ``sft`` export `curate.train.sft` reads (written once)."""
    from curate.export.shards import EXPORT_MANIFEST
    from curate.io import write_json, write_parquet

    if (folder / EXPORT_MANIFEST).exists():
        return folder
    name = "data/train-00000-of-00001.parquet"
    frame = pl.DataFrame(
        {
            "messages": [
                [{"role": "user", "content": e.prompt},
                 {"role": "assistant", "content": e.completion}]
                for e in examples
            ]
        }
    )  # fmt: skip
    write_parquet(frame, folder / name)
    manifest = {"format": "sft", "splits": {"train": {"files": [name], "rows": frame.height}}}
    write_json(manifest, folder / EXPORT_MANIFEST)  # last: its presence says the data is whole
    return folder
