"""The data a trainer reads: the Parquet shards ``curate export`` wrote, unchanged.

``DATA`` is an export folder (its ``export.json`` names the format and the files of each
split) or a run directory, which is exported first into ``OUT/data`` in the format the
trainer needs (``sft`` for SFT, ``rl`` for GRPO), so that what is trained on is always a
shard that ``curate publish`` could upload.

Which formats each trainer takes:

- SFT: ``sft`` (a ``messages`` conversation) and ``trl`` (``prompt``/``completion``);
- GRPO: ``rl`` and ``trl`` (``prompt`` and the gold ``answer``) and ``verl`` (``prompt``, the
  gold in ``reward_model.ground_truth``; it is handed to the reward as ``answer``). A
  problem appears once per prompt (``trl`` rows, one per response, are reduced to one per
  problem).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from curate.errors import ConfigError, InputError

Kind = Literal["sft", "grpo"]
ACCEPTS: dict[Kind, tuple[str, ...]] = {"sft": ("sft", "trl"), "grpo": ("rl", "verl", "trl")}
EXPORTS_TO: dict[Kind, str] = {"sft": "sft", "grpo": "rl"}


@dataclass(frozen=True)
class TrainData:
    """An export to train on: its folder, format and the files of its splits."""

    folder: Path
    format: str
    files: dict[str, tuple[Path, ...]]
    manifest: dict[str, Any]

    @property
    def train_files(self) -> tuple[Path, ...]:
        return self.files.get("train", ())

    def describe(self) -> dict[str, Any]:
        """What decides the rows: the folder, format, files and, from ``export.json``, the
        run's stages (their fingerprints), the export options and the completions used."""
        return {
            "folder": str(self.folder.resolve()),
            "format": self.format,
            "rows": {s: v.get("rows") for s, v in self.manifest.get("splits", {}).items()},
            "files": {s: [p.name for p in f] for s, f in self.files.items()},
            "run_stages": self.manifest.get("run", {}).get("stages"),
            "options": self.manifest.get("options"),
            "completions": self.manifest.get("completions"),
        }


def resolve(data: str | Path, kind: Kind, out: Path) -> TrainData:
    """The export ``data`` names, or the export of run ``data`` into ``out / "data"``."""
    from curate.export.shards import EXPORT_MANIFEST, previous_export

    folder = Path(data)
    if not folder.exists():
        raise ConfigError(f"training data {folder} does not exist; expected an export or a run")
    if folder.is_dir() and not (folder / EXPORT_MANIFEST).exists():
        from curate.run import MANIFEST

        if not (folder / MANIFEST).exists():
            raise ConfigError(
                f"{folder} is neither an export (no {EXPORT_MANIFEST}) nor a run directory "
                f"(no {MANIFEST}); pass what `curate export` or `curate run` wrote"
            )
        from curate.export.shards import export_run
        from curate.train.session import world_size

        if world_size() > 1:
            raise ConfigError(
                f"{folder} is a run directory; with several processes export it first "
                f"(`curate export {folder} OUT --format {EXPORTS_TO[kind]}`) and train on OUT"
            )
        folder = out / "data"
        export_run(data, folder, format=EXPORTS_TO[kind])  # type: ignore[arg-type]
    manifest = previous_export(folder)
    if manifest is None:
        raise ConfigError(f"{folder}/{EXPORT_MANIFEST} is not a curate export manifest")
    fmt = str(manifest["format"])
    if fmt not in ACCEPTS[kind]:
        raise ConfigError(
            f"{folder} is a {fmt!r} export; {kind.upper()} trains on "
            f"{' or '.join(repr(f) for f in ACCEPTS[kind])} exports: re-export with "
            f"`curate export RUN --format {EXPORTS_TO[kind]}`"
        )
    files = {
        split: tuple(folder / f for f in info.get("files", []))
        for split, info in manifest.get("splits", {}).items()
    }
    for paths in files.values():
        for p in paths:
            if not p.exists():
                raise InputError("shard listed in export.json is missing", path=p)
    if not files.get("train"):
        raise ConfigError(f"{folder}: the export has no train split")
    return TrainData(folder, fmt, files, manifest)


def load(data: TrainData, kind: Kind, split: str = "train") -> Any:
    """The split as a ``datasets.Dataset`` in the columns TRL reads (see the module doc)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    paths = data.files.get(split, ())
    tables = [pq.read_table(p) for p in paths]
    if kind == "grpo":
        for path, shard in zip(paths, tables, strict=True):
            _check_gold(shard, path, data.format)
    table = pa.concat_tables(tables) if tables else None
    if table is None or table.num_rows == 0:
        raise ConfigError(f"{data.folder}: the {split} split has no rows to train on")
    if kind == "sft":
        columns = ["messages"] if data.format == "sft" else ["prompt", "completion"]
        return Dataset(table.select(columns))
    if data.format == "verl":
        gold = table.column("reward_model").combine_chunks().field("ground_truth")
        table = table.append_column("answer", gold)
    elif data.format == "trl":
        table = _one_per_problem(table)
    keep = [c for c in table.column_names if c not in ("completion", "messages")]
    return Dataset(table.select(keep))


def _one_per_problem(table: Any) -> Any:
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.unique("problem_id", keep="first", maintain_order=True).to_arrow()


def _check_gold(shard: Any, path: Path, fmt: str) -> None:
    """A GRPO prompt without a gold answer would get reward 0 on every sample: refuse it,
    naming the shard, the row in it and the field."""
    if fmt == "verl":
        field = "reward_model.ground_truth"
        column = shard.column("reward_model").combine_chunks().field("ground_truth")
    elif "answer" in shard.column_names:
        field, column = "answer", shard.column("answer")
    else:
        raise InputError(
            f"the {fmt} export has no gold answers: a verifier reward needs them; export a "
            "run whose problems have answers (curate.RequireGradable())",
            path=path,
            field="answer",
        )
    for i, answer in enumerate(column.to_pylist()):
        if answer is None or not str(answer).strip():
            raise InputError(
                "a prompt has no gold answer, so every sample of it would get reward 0: "
                "filter such problems out (curate.RequireGradable()) and export again",
                path=path,
                row=i,
                field=field,
            )
