"""The dataset card's plots: PNG files that are byte-identical each time they are made.

matplotlib is imported lazily (it is in the ``export`` extra) and used without pyplot: each
plot is its own `Figure` on an Agg canvas, so nothing global (backend, open figures) is
touched. Determinism comes from a fixed style, size and DPI, categories in a fixed order,
and PNG metadata without the ``Software`` entry (the only one matplotlib writes that names
a version; Agg PNGs carry no date).

>>> import polars as pl, tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> problems = pl.DataFrame({"chars": [4, 12], "source": ["a", "b"]})
>>> [p.name for p in write_plots(problems, pl.DataFrame(), out)]
['problem_length', 'source_mix']
>>> sorted(f.name for f in out.iterdir())
['problem_length.png', 'source_mix.png']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from curate.errors import MissingExtraError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SIZE = (7.0, 3.6)  # inches
DPI = 100
MAX_SERIES = 8  # more sources or models than this: the rest are drawn as "other"
PLOT_NAMES = ("problem_length", "response_length", "pass_rate", "difficulty", "source_mix")


@dataclass(frozen=True)
class Plot:
    """A plot written to ``plots/<name>.png``, with the title the card shows above it."""

    name: str
    title: str


def write_plots(
    problems: pl.DataFrame,
    responses: pl.DataFrame,
    out: Path,
    *,
    difficulty_order: Sequence[str] = (),
) -> list[Plot]:
    """Write the card's plots into ``out`` and return what was written, in card order.

    ``problems``: the final problems (``chars``: the problem's length, ``source``, and when graded
    ``pass_rate`` and ``difficulty``); ``responses``: ``model`` and ``n_tokens`` of the
    responses (empty when the run has none). Plots that have no data are skipped, and an
    earlier run's PNG of that name is removed so the folder matches the card.
    """
    out.mkdir(parents=True, exist_ok=True)
    made: list[Plot] = []

    def emit(name: str, title: str, draw: Callable[[Axes], None]) -> None:
        _save(out / f"{name}.png", draw, bars=name in ("difficulty", "source_mix"))
        made.append(Plot(name, title))

    if problems.height:
        lengths = problems.select(
            pl.col("chars").alias("value"),
            _lumped(problems["source"].fill_null("(none)")).alias("series"),
        )
        emit(
            "problem_length",
            "Problem length (characters), per source",
            lambda ax: _histogram(ax, lengths, "characters"),
        )
    tokens = responses.filter(pl.col("n_tokens").is_not_null()) if responses.height else responses
    if tokens.height:
        per_model = tokens.select(
            pl.col("n_tokens").alias("value"), _lumped(tokens["model"]).alias("series")
        )
        emit(
            "response_length",
            "Response length (tokens), per model",
            lambda ax: _histogram(ax, per_model, "tokens"),
        )
    if "pass_rate" in problems.columns and problems["pass_rate"].drop_nulls().len():
        rates = problems["pass_rate"].drop_nulls()
        emit("pass_rate", "Pass rate per problem", lambda ax: _pass_rates(ax, rates))
    if "difficulty" in problems.columns and problems.height:
        counts = _counts(problems["difficulty"].fill_null("ungraded"), difficulty_order)
        emit("difficulty", "Problems per difficulty", lambda ax: _bars(ax, counts, "problems"))
    if problems.height:
        counts = _counts(problems["source"].fill_null("(none)"), ())
        emit("source_mix", "Problems per source", lambda ax: _bars(ax, counts, "problems"))
    written = {p.name for p in made}
    for name in PLOT_NAMES:
        if name not in written:
            (out / f"{name}.png").unlink(missing_ok=True)
    return made


def _lumped(labels: pl.Series) -> pl.Series:
    """Labels with all but the `MAX_SERIES` most frequent replaced by "other"."""
    top = _counts(labels, ())[:MAX_SERIES]
    keep = [name for name, _ in top]
    return pl.Series(
        [x if x in keep else "other" for x in labels.cast(pl.String).to_list()], dtype=pl.String
    )


def _counts(labels: pl.Series, order: Sequence[str]) -> list[tuple[str, int]]:
    """(label, count) in ``order`` first, then by count (descending) and label."""
    frame = labels.cast(pl.String).value_counts(name="n").rename({labels.name: "label"})
    pairs = [(str(r[0]), int(r[1])) for r in frame.iter_rows()]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(pairs, key=lambda p: (rank.get(p[0], len(rank)), -p[1], p[0]))


def _histogram(ax: Axes, data: pl.DataFrame, unit: str) -> None:
    import numpy as np

    values = data["value"].cast(pl.Float64).to_numpy()
    edges = np.histogram_bin_edges(values, bins=min(30, max(1, len(np.unique(values)))))
    if edges[0] == edges[-1]:  # a single value: give its bar a width
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    series = _counts(data["series"], ())
    series = [s for s in series if s[0] != "other"] + [s for s in series if s[0] == "other"]
    for name, _ in series:
        part = data.filter(pl.col("series") == name)["value"].cast(pl.Float64).to_numpy()
        ax.hist(part, bins=edges.tolist(), histtype="step", linewidth=1.5, label=_short(name, 20))
    ax.set_xlabel(unit)
    ax.set_ylabel("count")
    if len(series) > 1:  # beside the plot, where it hides no line
        ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig = ax.get_figure(root=True)
        assert fig is not None  # drawn on a Figure made by _save
        fig.subplots_adjust(right=0.7)


def _pass_rates(ax: Axes, rates: pl.Series) -> None:
    import numpy as np

    edges = np.linspace(0.0, 1.0, 11)
    ax.hist(rates.cast(pl.Float64).to_numpy(), bins=edges.tolist(), color="C0", edgecolor="white")
    ax.set_xlim(0, 1)
    ax.set_xlabel("pass rate (correct / counted responses)")
    ax.set_ylabel("problems")


def _bars(ax: Axes, counts: list[tuple[str, int]], unit: str) -> None:
    names = [_short(name) for name, _ in counts]
    values = [n for _, n in counts]
    positions = list(range(len(counts)))
    bars = ax.barh(positions, values, color="C0")
    ax.bar_label(bars, padding=2, fontsize="small")
    ax.set_yticks(positions, names, fontsize="small")
    ax.invert_yaxis()  # first category on top, as in the card's tables
    ax.set_xlabel(unit)


def _short(label: str, limit: int = 26) -> str:
    # one line, shortened in the middle (names often differ at the end: math_1, math_2); no
    # bare "$": matplotlib would read a pair as mathtext; a leading "_" hides a legend entry
    flat = " ".join(label.split())
    if len(flat) > limit:
        flat = flat[: limit // 2 - 1] + "…" + flat[-(limit - limit // 2) :]
    flat = flat.replace("$", r"\$")
    return " " + flat if flat.startswith("_") else flat


def _save(path: Path, draw: Callable[[Axes], None], *, bars: bool) -> None:
    try:
        import matplotlib.style
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - the export extra installs it
        raise MissingExtraError("matplotlib", "export") from None

    # the default style, whatever the user's matplotlibrc says: same bytes everywhere
    with matplotlib.style.context("default"):
        fig = Figure(figsize=SIZE, dpi=DPI)
        FigureCanvasAgg(fig)
        # fixed margins (a layout engine would cost a second drawing); room for 26-character
        # category names on the left of bar charts
        fig.subplots_adjust(left=0.3 if bars else 0.1, right=0.95, top=0.95, bottom=0.14)
        draw(fig.add_subplot())
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    os.replace(tmp, path)
