r"""The dataset card: a ``README.md`` that the Hub shows and `datasets.load_dataset` reads.

`write_card` writes ``OUT/README.md`` and ``OUT/plots/*.png`` for a run, and for its export
when one is given:

- a YAML header made by PyYAML's safe emitter (so any name or license survives quoting):
  ``license``, ``pretty_name``, ``tags``, ``task_categories``, ``size_categories`` and, for
  an export, ``configs`` whose ``data_files`` point at the shards, which is what the Hub's
  viewer and ``load_dataset(repo)`` use to find the splits;
- a Markdown body: a summary, the recipe with every stage's configuration, the stages'
  counts and rejects by reason, the sources with their licenses, counts per source and per
  difficulty, pass rates, the export's splits and files (for SFT rows, where the completions
  came from), how to load it, how to train on it (for verl, the overrides that point it at
  curate's scorer), one example, and the plots (`curate.export.plots`).

Everything is derived from the run's files, never from the clock, so writing the card twice
gives the same bytes. Every string that comes from the data or the user is escaped where it
lands (`md_escape` in text and table cells, `code_block` for literal text).

>>> md_escape("a|b <i>*x*</i>")
'a\\|b &lt;i&gt;\\*x\\*&lt;/i&gt;'
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate._version import __version__
from curate.errors import ConfigError, MissingExtraError, RunError
from curate.export.formats import REFERENCE
from curate.export.plots import Plot, write_plots
from curate.run import Run

TAGS = ("math", "reasoning", "curate")
# license ids the Hub accepts as they are; any other agreed license becomes "other" + a name
_HUB_IDS = """apache-2.0 mit bsd-2-clause bsd-3-clause cc0-1.0 cc-by-4.0 cc-by-sa-4.0 cc-by-nc-4.0
cc-by-nc-sa-4.0 cc-by-nd-4.0 cc-by-3.0 cc-by-sa-3.0 gpl-2.0 gpl-3.0 lgpl-3.0 agpl-3.0 mpl-2.0
odc-by odbl pddl openrail llama2 llama3 unlicense wtfpl other unknown"""
HUB_LICENSES = frozenset(_HUB_IDS.split())
_SIZE_NAMES = "n<1K 1K<n<10K 10K<n<100K 100K<n<1M 1M<n<10M 10M<n<100M 100M<n<1B 1B<n<10B"
# the Hub's size_categories: (exclusive upper bound, name)
_SIZES = [
    (10 ** (i + 3), name) for i, name in enumerate(f"{_SIZE_NAMES} 10B<n<100B 100B<n<1T".split())
]
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()|#~!${}])")
_EXAMPLE_CHARS = 600


def write_card(
    run: Run | str | Path,
    out: str | Path,
    *,
    export: str | Path | None = None,
    repo: str | None = None,
) -> Path:
    """Write ``out/README.md`` and ``out/plots/`` for ``run`` (and its ``export``); the path.

    ``export``: the folder `curate.export.export_run` wrote (its ``export.json`` and shards,
    usually ``out`` itself), which adds the YAML ``configs`` and the splits; without it the
    card describes the run alone (``curate report``). ``repo``: the Hub name used in the
    loading example (default a placeholder).

    >>> import curate, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "p.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\\n')
    >>> run = curate.Recipe("demo", [curate.read(d / "p.jsonl")]).run(d / "run")
    >>> card = write_card(run, d / "card")
    >>> card.read_text().splitlines()[:3]
    ['---', 'license: unknown', 'pretty_name: demo']
    """
    run = run if isinstance(run, Run) else Run(run)
    out = Path(out)
    facts = _Facts.of(run)
    shards = _Export.of(Path(export), out) if export is not None else None
    plots = write_plots(
        facts.problems, facts.responses, out / "plots", difficulty_order=facts.buckets
    )
    text = front_matter(header(facts, shards)) + "\n" + body(facts, shards, plots, repo)
    path = out / "README.md"
    tmp = out / f".README.md.tmp-{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class _Facts:
    """What the card says about a run, read once (the columns it needs, not the texts)."""

    run: Run
    manifest: dict[str, Any]
    problems: pl.DataFrame  # id, chars, source, and what grading and selection added
    responses: pl.DataFrame  # model, n_tokens of the final problems' responses
    example: dict[str, Any] | None  # the first problem by id: id, problem, answer
    buckets: tuple[str, ...]  # the Grade stage's difficulty names, easiest last

    @staticmethod
    def of(run: Run) -> _Facts:
        lazy = run.table("problems")  # a RunError that says how to finish an incomplete run
        names = lazy.collect_schema().names()
        wanted: list[str | pl.Expr] = [
            c for c in ("difficulty", "pass_rate", "cv", "by_model") if c in names
        ]
        if "selected" in names:
            wanted.append(pl.col("selected").list.len().alias("n_selected"))
        chars = pl.col("problem").str.len_chars().alias("chars")
        frame = lazy.select("id", chars, "source", *wanted).sort("id").collect()
        responses = pl.DataFrame(schema={"model": pl.String, "n_tokens": pl.Int64})
        if "samples" in names:
            flat = lazy.select(pl.col("samples").explode()).drop_nulls().unnest("samples")
            responses = flat.select("model", pl.col("n_tokens").cast(pl.Int64)).collect()
        example = None
        if frame.height:
            first = lazy.filter(pl.col("id") == frame["id"][0]).select("id", "problem", "answer")
            example = first.collect().row(0, named=True)
        buckets: tuple[str, ...] = ()
        for stage in run.manifest["stages"]:
            if str(stage.get("class", "")).endswith(".Grade"):
                buckets = tuple(str(b[0]) for b in stage.get("config", {}).get("buckets", []))
        return _Facts(run, run.manifest, frame, responses, example, buckets)

    @property
    def sources(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("sources", []))


@dataclass(frozen=True)
class _Export:
    """The export folder as its ``export.json`` describes it; file paths relative to OUT."""

    format: str
    splits: tuple[tuple[str, int, tuple[str, ...]], ...]  # (split, rows, files)
    features: list[Any] | None  # the Hub's dataset_info.features, when the export states them
    data_files: tuple[tuple[str, str | list[str]], ...]  # (split, path or paths), with files
    completions: dict[str, Any] | None = None  # sft/trl: where the completions came from
    reward: dict[str, Any] | None = None  # verl/rl: how to score the rows

    @property
    def rows(self) -> int:
        return sum(rows for _, rows, _ in self.splits)

    @staticmethod
    def of(folder: Path, out: Path) -> _Export:
        path = folder / "export.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            splits = manifest["splits"].items()
        except (OSError, ValueError, KeyError, AttributeError) as e:
            raise RunError(
                f"{folder} holds no readable export.json ({type(e).__name__}: {e}); expected "
                "the folder `curate export` wrote: export the run again, or leave export= out"
            ) from None
        rows = []
        for name, info in splits:
            files = []
            for entry in info.get("files", []):
                if not (folder / entry).is_file():
                    raise RunError(
                        f"{path} lists {entry!r} for split {name!r} but it is not there; "
                        "export the run again"
                    )
                rel = Path(os.path.relpath((folder / entry).resolve(), out.resolve())).as_posix()
                if rel.startswith("../"):
                    raise ConfigError(
                        f"shard {entry!r} of export {folder} is outside the card's folder {out}; "
                        "the Hub finds shards relative to README.md: write the card into the "
                        "export folder (out=export)"
                    )
                files.append(rel)
            rows.append((str(name), int(info.get("rows", 0)), tuple(files)))
        data = tuple((name, _pattern(name, list(files), out)) for name, _, files in rows if files)
        features = manifest.get("features") or None
        extra = {k: v for k in ("completions", "reward") if isinstance(v := manifest.get(k), dict)}
        return _Export(str(manifest.get("format")), tuple(rows), features, data, **extra)


def _pattern(split: str, files: list[str], out: Path) -> str | list[str]:
    """``dir/split-*`` when that glob matches exactly these files, else the list itself."""
    folders = {f.rsplit("/", 1)[0] if "/" in f else "" for f in files}
    if len(folders) == 1 and all(f.rsplit("/", 1)[-1].startswith(f"{split}-") for f in files):
        folder = folders.pop()
        glob = f"{folder}/{split}-*" if folder else f"{split}-*"
        found = {p.relative_to(out).as_posix() for p in out.glob(glob) if p.is_file()}
        if found == set(files) and not folder.startswith(".."):
            return glob
    return sorted(files)


def header(facts: _Facts, shards: _Export | None) -> dict[str, Any]:
    """The YAML front matter as data (see `front_matter`)."""
    rows = shards.rows if shards is not None else facts.problems.height
    data: dict[str, Any] = {**hub_license([s.get("license") for s in facts.sources])}
    data |= {
        "pretty_name": " ".join(facts.run.name.split()) or "curate dataset",
        "tags": list(TAGS),
        "task_categories": ["text-generation"],
        "size_categories": [size_category(rows)],
    }
    if shards is not None:
        files = [{"split": name, "path": path} for name, path in shards.data_files]
        data["configs"] = [{"config_name": "default", "data_files": files}]
        if shards.features:  # the viewer's column types (split sizes left out: `datasets`
            # wants their in-memory bytes, which only it can compute)
            data["dataset_info"] = {"features": shards.features}
    return data


def hub_license(licenses: Sequence[str | None]) -> dict[str, str]:
    """The Hub's ``license`` (and ``license_name``) for the sources' licenses.

    >>> hub_license(["MIT", "mit"]), hub_license(["MIT", None]), hub_license([])
    ({'license': 'mit'}, {'license': 'other'}, {'license': 'unknown'})
    >>> hub_license(["CC BY 4.0", "cc-by-4.0"]), hub_license(["Custom: see site"])
    ({'license': 'cc-by-4.0'}, {'license': 'other', 'license_name': 'custom-see-site'})
    """
    # compared as slugs: "CC BY 4.0" and "cc-by-4.0" agree
    slugs = {re.sub(r"[^a-z0-9.]+", "-", (x or "").lower()).strip("-") for x in licenses}
    if slugs <= {""}:
        return {"license": "unknown"}
    if len(slugs) > 1:  # they differ, or some source has none
        return {"license": "other"}
    (slug,) = slugs
    if slug in HUB_LICENSES:
        return {"license": slug}
    return {"license": "other", "license_name": slug}  # the Hub wants a lowercase slug


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket for ``rows``.

    >>> size_category(0), size_category(1000), size_category(12_345)
    ('n<1K', '1K<n<10K', '10K<n<100K')
    """
    for bound, name in _SIZES:
        if rows < bound:
            return name
    return "n>1T"


def front_matter(data: dict[str, Any]) -> str:
    """``data`` as a YAML block between ``---`` lines, written by PyYAML's safe emitter.

    Strings that hold line breaks or are not plain printable text are written double-quoted
    (escapes on one line), so no line of the block can read as the ``---`` that ends it.

    >>> print(front_matter({"pretty_name": "a: b # c", "tags": ["x"]}), end="")
    ---
    pretty_name: 'a: b # c'
    tags:
    - x
    ---
    """
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:  # pragma: no cover - huggingface_hub (export extra) requires it
        raise MissingExtraError("pyyaml", "export") from None

    class Dumper(yaml.SafeDumper):  # type: ignore[misc,name-defined]
        pass

    def string(dumper: Any, value: str) -> Any:
        odd = any(not c.isprintable() or c in "\u2028\u2029\x85" for c in value)
        style = '"' if odd or value != value.strip() else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, string)
    text = yaml.dump(
        data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=2**31 - 1, indent=2
    )
    return f"---\n{text}---\n"


def md_escape(text: object) -> str:
    """``text`` as literal Markdown on one line: safe in a table cell, a heading or a list.

    >>> md_escape("x | y\\n# z `w`")
    'x \\\\| y \\\\# z \\\\`w\\\\`'
    """
    flat = " ".join(str(text).split())
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", flat)


def code_block(text: str, lang: str = "text") -> str:
    """``text`` in a fenced block whose fence is longer than any backtick run inside it.

    >>> print(code_block("a ``` b"))
    ````text
    a ``` b
    ````
    """
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def body(facts: _Facts, shards: _Export | None, plots: Sequence[Plot], repo: str | None) -> str:
    """The Markdown below the YAML header."""
    parts = [f"# {md_escape(facts.run.name) or 'curate dataset'}", _summary(facts, shards)]
    parts += _recipe(facts) + _stages(facts) + _sources(facts) + _grades(facts)
    parts += _exported(shards) + _loading(facts, shards, repo) + _training(shards)
    parts += _example(facts)
    parts.append("## Plots")
    if not plots:
        parts.append("No plots: the run kept no problems.")
    for plot in plots:
        parts.append(f"### {plot.title}\n\n![{plot.title}](plots/{plot.name}.png)")
    return "\n\n".join(parts) + "\n"


def _summary(facts: _Facts, shards: _Export | None) -> str:
    stages = facts.manifest.get("stages", [])
    read = stages[0]["rows_in"] if stages else 0
    n, n_src, k = facts.problems.height, len(facts.sources), max(len(stages) - 1, 0)
    version = md_escape(facts.manifest.get("curate_version", __version__))
    text = (
        f"{n:,} problems from {n_src} source{'s' * (n_src != 1)}, curated with the recipe "
        f"**{md_escape(facts.run.name)}** by curate {version}: "
        f"{read:,} rows read, {n:,} kept after {k} stage{'s' * (k != 1)}."
    )
    if n == 0:
        text += " The run kept no problems: this dataset is empty."
    if facts.responses.height:
        models = facts.responses["model"].unique().len()
        text += f" {facts.responses.height:,} responses from {models} model(s)"
        if "n_selected" in facts.problems.columns:
            chosen = int(facts.problems["n_selected"].sum())
            text += f", {chosen:,} of them selected for training"
        text += "."
    if shards is not None:
        splits = ", ".join(f"{name} {rows:,}" for name, rows, _ in shards.splits)
        text += f" Exported in the {md_escape(shards.format)} format: {splits} rows."
    return text


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _recipe(facts: _Facts) -> list[str]:
    stages = [
        {k: s.get(k) for k in ("name", "class", "version", "config")}
        for s in facts.manifest.get("stages", [])
    ]
    # valid JSON with one stage per line: long configurations stay readable
    head = json.dumps({"recipe": facts.run.name, "seed": facts.manifest.get("seed")})
    lines = [json.dumps(s, ensure_ascii=False, default=str) for s in stages]
    text = head[:-1] + ', "stages": [\n  ' + ",\n  ".join(lines) + "\n]}"
    return ["## Recipe", "Every stage in order, with its configuration:", code_block(text, "json")]


def _stages(facts: _Facts) -> list[str]:
    rows: list[Sequence[object]] = []
    for s in facts.manifest.get("stages", []):
        reasons = s.get("rejected", {})
        by_reason = ", ".join(f"{k}: {v:,}" for k, v in sorted(reasons.items())) or "-"
        cls = str(s.get("class", "")).rsplit(".", 1)[-1]
        counts = [f"{s.get(k, 0):,}" for k in ("rows_in", "kept")]
        counts.append(f"{sum(reasons.values()):,}")
        rows.append([s.get("index"), s.get("name"), cls, *counts, by_reason, s.get("seconds")])
    head = ("#", "stage", "class", "rows in", "kept", "rejected", "rejected by reason", "seconds")
    return ["## Stages", _table(head, rows)]


def _sources(facts: _Facts) -> list[str]:
    final = dict(_count(facts.problems, "source")) if facts.problems.height else {}
    rows = [
        [
            *(s.get("name"), s.get("path"), s.get("format"), f"{s.get('rows', 0):,}"),
            *(s.get("license") or "unknown", f"{final.pop(str(s.get('name')), 0):,}"),
        ]
        for s in facts.sources
    ]
    rows += [[name, "-", "-", "-", "unknown", f"{n:,}"] for name, n in sorted(final.items())]
    head = ("source", "path", "format", "rows read", "license", "final problems")
    return ["## Sources", _table(head, rows)]


def _count(frame: pl.DataFrame, column: str) -> list[tuple[str, int]]:
    counts = frame[column].cast(pl.String).fill_null("(none)").value_counts(name="n")
    return sorted(((str(k), int(v)) for k, v in counts.iter_rows()), key=lambda r: r[0])


def _grades(facts: _Facts) -> list[str]:
    p, out = facts.problems, []
    if "difficulty" in p.columns and p.height:
        rank = {name: i for i, name in enumerate(facts.buckets)}
        counts = sorted(
            _count(p.with_columns(pl.col("difficulty").fill_null("ungraded")), "difficulty"),
            key=lambda r: (rank.get(r[0], len(rank)), r[0]),
        )
        rows: list[Sequence[object]] = [(k, f"{n:,}", f"{n / p.height:.1%}") for k, n in counts]
        out += ["## Problems per difficulty", _table(("difficulty", "problems", "share"), rows)]
    rates = p["pass_rate"].drop_nulls() if "pass_rate" in p.columns else pl.Series([])
    if rates.len():
        mean_cv = p["cv"].drop_nulls().mean() if "cv" in p.columns else None
        lines = [
            f"- graded problems: {rates.len():,} of {p.height:,}",
            f"- pass rate: mean {_num(rates.mean())}, median {_num(rates.median())}, "
            f"quartiles {_num(rates.quantile(0.25))} and {_num(rates.quantile(0.75))}",
            f"- solved by no response: {int((rates == 0).sum()):,}; "
            f"by every response: {int((rates == 1).sum()):,}",
            f"- mean coefficient of variation of the scores: {_num(mean_cv)}",
        ]
        out += ["## Pass rates", "\n".join(lines)]
        if "by_model" in p.columns:
            models = (
                p.select(pl.col("by_model").explode())
                .drop_nulls()
                .unnest("by_model")
                .group_by("model", maintain_order=True)
                .agg(pl.col("n").sum(), pl.col("correct").sum())
            )
            rows = [
                (m, f"{n:,}", f"{c:,}", _num(c / n if n else None))
                for m, n, c in models.iter_rows()
            ]
            out.append(_table(("model", "responses counted", "correct", "pass rate"), rows))
    return out


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _exported(shards: _Export | None) -> list[str]:
    if shards is None:
        return []
    rows: list[Sequence[object]] = []
    for name, n, files in shards.splits:
        shown = files if len(files) <= 3 else (files[0], "…", files[-1])
        rows.append((name, f"{n:,}", len(files), ", ".join(shown) or "-"))
    out = [
        "## Export",
        f"Format: {md_escape(shards.format)}; Parquet shards:",
        _table(("split", "rows", "shards", "files"), rows),
    ]
    if shards.completions is not None:
        out.append(_completions(shards.completions))
    return out


_REFERENCE = f"the problems' reference solutions (model `{REFERENCE}`, sample 0)"
_SOURCES = {
    "responses": "the run's selected responses",
    "solutions": _REFERENCE,
    "both": f"the run's selected responses and {_REFERENCE}",
}


def _completions(info: dict[str, Any]) -> str:
    """What export.json says about an SFT export's completions, as a sentence or three."""
    source = str(info.get("source"))
    text = f"Assistant messages: {_SOURCES.get(source, md_escape(source))}"
    counts = info.get("rows") or {}
    if source == "both" and isinstance(counts, dict):
        text += (
            f" ({int(counts.get('responses', 0)):,} and {int(counts.get('solutions', 0)):,} rows)"
        )
    text += "."
    missing = info.get("without_solution")
    if isinstance(missing, int):
        text += f" Problems without a reference solution, left out: {missing:,}."
    duplicates = int(info.get("duplicates") or 0)
    text += f" Duplicate (prompt, completion) pairs dropped: {duplicates:,}."
    return text


def _training(shards: _Export | None) -> list[str]:
    """How to train on the export with curate's reward, as its export.json says."""
    reward = shards.reward if shards is not None else None
    if reward is None:
        return []
    verl = reward.get("custom_reward_function")
    if isinstance(verl, dict) and isinstance(reward.get("overrides"), list):
        lines = ["python -m verl.trainer.main_ppo ...", *map(str, reward["overrides"])]
        return [
            "## Training with verl",
            "verl's built-in scorer knows only a few `data_source` names: score these rows "
            f"with curate's, {_inline(verl.get('name'))} of {_inline(reward.get('module'))}, "
            "by adding these overrides to the trainer's command line:",
            code_block(" \\\n  ".join(lines), "bash"),
        ]
    if isinstance(reward.get("trl"), str):
        module, _, name = reward["trl"].rpartition(".")
        code = f"from {module} import {name}\n\ntrainer = GRPOTrainer(..., reward_funcs=[{name}])"
        return [
            "## Training with TRL",
            "TRL's `GRPOTrainer` reads `prompt` and hands `answer` to its reward functions; "
            f"curate's is {_inline(reward['trl'])} (`curate train grpo` uses it):",
            code_block(code, "python"),
        ]
    return []


def _inline(text: object) -> str:
    """``text`` as inline code on one line (no backticks inside to end it early)."""
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


def _loading(facts: _Facts, shards: _Export | None, repo: str | None) -> list[str]:
    if shards is None:
        code = (
            "import curate\n\n"
            f"problems = curate.open_run({str(facts.run.path)!r}).table('problems').collect()"
        )
        note = "This card describes a run; export it first with `curate export` to get shards."
        return ["## Loading", note, code_block(code, "python")]
    files = {name: path for name, path in shards.data_files}
    code = (
        "from datasets import load_dataset\n\n"
        f"ds = load_dataset({(repo or 'USER/NAME')!r})  # from the Hub\n"
        f"ds = load_dataset('parquet', data_files={files!r})  # from this folder"
    )
    return ["## Loading", code_block(code, "python")]


def _example(facts: _Facts) -> list[str]:
    row = facts.example
    if row is None:
        return []
    problem = str(row.get("problem") or "")
    if len(problem) > _EXAMPLE_CHARS:
        problem = problem[:_EXAMPLE_CHARS] + " …"
    return [
        "## Example",
        f"Problem {md_escape(row['id'])}:",
        code_block(problem),
        "Answer:",
        code_block(str(row.get("answer"))),
    ]
