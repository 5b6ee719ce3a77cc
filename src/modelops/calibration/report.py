"""The calibration report: one self-contained HTML file that shows how a search went.

`mops calibrate report` writes it. Everything it needs is inside the file (bokeh's
JavaScript inlined, the data embedded), so it opens offline, from an email or an archive.
The sections: a summary, the loss trace, the parameter traces, the best fits over the
observed data, pair plots of the top trials, a table of the best trials, the failures and
the parameters. Every string that comes from a user (names, columns, failure reasons) is
escaped; a report never runs what a model wrote.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from bokeh.embed import components
from bokeh.layouts import gridplot
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    FactorRange,
    HoverTool,
    LinearColorMapper,
    LogColorMapper,
    PlainText,
    Range1d,
    Title,
)
from bokeh.models.layouts import LayoutDOM
from bokeh.palettes import Viridis256
from bokeh.plotting import figure
from bokeh.resources import Resources

from modelops.calibration.search import TrialRecord
from modelops.calibration.spec import FreeParameter, Target

BEST_TABLE_ROWS = 10
FITS_SHOWN = 3
"""How many of the best trials' fits are drawn per target."""
PAIR_FRACTION = 0.25
PAIR_MINIMUM = 10
"""Pair plots show the best quarter of the complete trials, but at least this many."""
LOG_DECADES = 2.0
"""A positive axis spanning more decades than this is drawn on a log scale."""
MAX_FACETS = 6
"""Fit plots per trial when a target joins on more than one column (one per group)."""
REASON_CHARS = 200
TRIALS_LISTED = 12

PAGE_WIDTH = 1160
BEST_COLOR = "#e6550d"
FAILED_COLOR = "#d62728"
FIT_COLOR = "#1f77b4"
TOOLS = "pan,box_zoom,wheel_zoom,reset,save"
JS = Resources(mode="inline", components=["bokeh"])
"""Only bokeh's core library: the report uses no widgets, tables or math, so their (large)
bundles are left out; MathJax would be fetched from the network."""


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, gathered by the runner from the search and the job."""

    name: str
    job_id: str
    state: str
    parameters: dict[str, FreeParameter]
    fixed: dict[str, Any]
    targets: dict[str, Target]
    trials: list[TrialRecord]
    observed: dict[str, pl.DataFrame]
    fits: dict[int, dict[str, list[pl.DataFrame]]]
    utilisation: float | None = None


Part = str | LayoutDOM
"""Escaped HTML, or a plot."""


@dataclass
class _Section:
    """One part of the page: a heading, then HTML and plots in order."""

    id: str
    title: str
    parts: list[Part] = field(default_factory=list)

    def add(self, *parts: Part | None) -> _Section:
        self.parts.extend(p for p in parts if p is not None)
        return self


def render_report(data: ReportData) -> str:
    """The report as one HTML document, bokeh's JavaScript and all the data inside it."""
    sections = [
        _loss_trace(data),
        _parameter_traces(data),
        _best_fits(data),
        _pair_plots(data),
        _best_table(data),
        _failures(data),
        _parameters(data),
    ]
    return _page(data, sections)


def write_report(data: ReportData, out: Path) -> Path:
    """Write the report to `out` (making its directory) and return `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(data), encoding="utf-8")
    return out


# ---- the trials ------------------------------------------------------------------------


def _complete(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Complete trials with a finite score, in trial order."""
    done = [t for t in trials if t.state == "complete" and _finite(t.score)]
    return sorted(done, key=lambda t: t.number)


def _ranked(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Complete trials, best (lowest score) first; ties go to the earlier trial."""
    return sorted(_complete(trials), key=lambda t: (t.score, t.number))


def _score(trial: TrialRecord) -> float:
    """A complete trial's score (NaN for one without)."""
    return math.nan if trial.score is None else float(trial.score)


def _failed(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    return sorted((t for t in trials if t.state == "failed"), key=lambda t: t.number)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _number(value: Any) -> float:
    """A parameter value to plot: NaN (not drawn) if it is missing or not a number."""
    return float(value) if _finite(value) else math.nan


def _values(trials: Sequence[TrialRecord], name: str) -> tuple[list[int], list[float]]:
    """The trials that have a numeric value for parameter `name`, and those values."""
    pairs = [(t.number, t.params.get(name)) for t in trials]
    kept = [(n, float(v)) for n, v in pairs if _finite(v)]
    return [n for n, _ in kept], [v for _, v in kept]


# ---- formatting --------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """A number short enough for a table cell, any other value as TOML would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _assignments(params: dict[str, Any], names: Sequence[str]) -> str:
    return ", ".join(f"{name} = {_fmt(params.get(name))}" for name in names)


def _label(text: str) -> PlainText:
    """A title or axis label drawn as given: bokeh reads a plain string with `$$` in it as
    TeX, which it cannot draw without MathJax from the network."""
    return PlainText(text)


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """An HTML table of already escaped cells; the columns in `numeric` are right-aligned."""

    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(
            f'<{tag} class="num">{v}</{tag}>' if i in numeric else f"<{tag}>{v}</{tag}>"
            for i, v in enumerate(values)
        )

    head = f"<thead><tr>{cells('th', headers)}</tr></thead>"
    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


# ---- scales --------------------------------------------------------------------------------


def _log_spread(values: Sequence[float]) -> bool:
    """Whether values are all positive and span more than LOG_DECADES decades."""
    if not values or min(values) <= 0:
        return False
    return math.log10(max(values) / min(values)) > LOG_DECADES


def _padded(low: float, high: float, log: bool, pad: float = 0.04) -> Range1d:
    """A range a little wider than [low, high], so points on a bound are not cut in half."""
    if log and low > 0 and high > 0:
        a, b = math.log10(low), math.log10(high)
        span = (b - a) or 1.0
        return Range1d(10 ** (a - pad * span), 10 ** (b + pad * span))
    span = (high - low) or (abs(high) or 1.0)
    return Range1d(low - pad * span, high + pad * span)


def _bounds(parameter: FreeParameter, values: Sequence[float]) -> Range1d:
    """A parameter's axis: its search bounds, else the values seen."""
    low = parameter.low if parameter.low is not None else min(values, default=0.0)
    high = parameter.high if parameter.high is not None else max(values, default=1.0)
    return _padded(float(low), float(high), bool(parameter.log))


def _score_mapper(scores: Sequence[float]) -> LinearColorMapper | LogColorMapper:
    """Colors for scores, the best darkest, on the scale the loss trace uses."""
    low, high = min(scores), max(scores)
    if high <= low:
        high = low + 1.0
    if _log_spread(scores):
        return LogColorMapper(palette=Viridis256, low=low, high=high)
    return LinearColorMapper(palette=Viridis256, low=low, high=high)


def _figure(title: str, x_label: str, y_label: str, **options: Any) -> figure:
    """A figure with the report's look: plain-text labels, the same tools everywhere."""
    heading = Title(text=_label(title), text_font_size="13px")
    fig = figure(title=heading, tools=TOOLS, toolbar_location="right", **options)
    fig.xaxis.axis_label = _label(x_label)
    fig.yaxis.axis_label = _label(y_label)
    fig.min_border_left = 10
    if options.get("width", 600) < 300:  # a small cell: fewer ticks, so labels don't collide
        fig.xaxis.ticker.desired_num_ticks = 3
        fig.yaxis.ticker.desired_num_ticks = 4
    return fig


def _trial_axis(fig: figure) -> figure:
    """Trial numbers are whole: no ticks between them."""
    fig.xaxis.ticker.min_interval = 1
    fig.xaxis.minor_tick_line_color = None
    return fig


def _trial_source(trials: Sequence[TrialRecord], names: Sequence[str]) -> dict[str, list]:
    """Columns for a hover tool: trial number, score and the free parameters as text."""
    return {
        "trial": [t.number for t in trials],
        "score": [t.score for t in trials],
        "score_text": [_fmt(t.score) for t in trials],
        "params": [_assignments(t.params, names) for t in trials],
    }


TRIAL_TOOLTIPS = [("trial", "@trial"), ("loss", "@score_text"), ("parameters", "@params")]


# ---- the summary --------------------------------------------------------------------------


def _summary(data: ReportData) -> str:
    """The header: which job, how far it got, the best result."""
    complete, failed = _complete(data.trials), _failed(data.trials)
    running = sum(t.state == "running" for t in data.trials)
    ranked = _ranked(data.trials)
    counts = f"{len(data.trials)} ({len(complete)} complete, {len(failed)} failed"
    counts += f", {running} running)" if running else ")"
    rows = [
        ("Job", f"<code>{_esc(data.job_id)}</code>"),
        ("State", f'<span class="state state-{_esc(data.state)}">{_esc(data.state)}</span>'),
        ("Trials", _esc(counts)),
    ]
    if ranked:
        best = ranked[0]
        rows.append(
            ("Best loss", f"<strong>{_esc(_fmt(best.score))}</strong> (trial {best.number})")
        )
        rows.append(("Best parameters", _esc(_assignments(best.params, list(data.parameters)))))
    else:
        rows.append(("Best loss", "no complete trial yet"))
    if data.utilisation is not None:
        rows.append(("Worker utilisation", f"{data.utilisation:.0%}"))
    items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    snapshot = ""
    if data.state == "running":
        snapshot = _note("The job is still running: this report is a snapshot.")
    return (
        f'<header id="summary"><h1>Calibration <span class="name">{_esc(data.name)}</span></h1>'
        f'<dl class="summary">{items}</dl>{snapshot}</header>'
    )


# ---- the loss trace -----------------------------------------------------------------------


def _loss_trace(data: ReportData) -> _Section:
    """Each trial's loss and the best so far: is the search still improving?"""
    section = _Section("loss-trace", "Loss trace")
    complete, failed = _complete(data.trials), _failed(data.trials)
    if not complete:
        return section.add(_note(f"No complete trial yet ({len(failed)} failed): nothing to plot."))
    scores = [_score(t) for t in complete]
    log = _log_spread(scores)
    fig = _trial_axis(
        _figure(
            "Loss of each trial",
            "trial",
            "loss (lower is better)",
            width=PAGE_WIDTH,
            height=360,
            y_axis_type="log" if log else "linear",
        )
    )
    points = fig.scatter(
        "trial",
        "score",
        source=ColumnDataSource(_trial_source(complete, list(data.parameters))),
        size=7,
        color=FIT_COLOR,
        alpha=0.7,
        legend_label="complete trial",
    )
    fig.step(
        [t.number for t in complete],
        list(np.minimum.accumulate(scores)),
        mode="after",
        line_width=2,
        color=BEST_COLOR,
        legend_label="best so far",
    )
    best = _ranked(data.trials)[0]
    fig.scatter(
        [best.number],
        [best.score],
        marker="star",
        size=18,
        color=BEST_COLOR,
        line_color="black",
        legend_label=f"best (trial {best.number})",
    )
    if failed:
        top = _above(scores, log)
        fig.scatter(
            [t.number for t in failed],
            [top] * len(failed),
            marker="x",
            size=10,
            line_width=2,
            color=FAILED_COLOR,
            legend_label="failed trial",
        )
    fig.add_tools(HoverTool(renderers=[points], tooltips=TRIAL_TOOLTIPS))
    fig.add_layout(fig.legend[0], "right")  # beside the plot: no trial hidden under it
    fig.legend.click_policy = "hide"
    if log:
        section.add(_note("The loss axis is logarithmic: the losses span many decades."))
    return section.add(fig)


def _above(scores: Sequence[float], log: bool) -> float:
    """A height just above the highest loss, where failed trials (which have none) go."""
    low, high = min(scores), max(scores)
    if log:
        return high * (high / low) ** 0.06
    return high + 0.06 * ((high - low) or abs(high) or 1.0)


# ---- the parameter traces -------------------------------------------------------------------


def _parameter_traces(data: ReportData) -> _Section:
    """Each free parameter over the trials: where the search looked, and where it settled."""
    section = _Section("parameter-traces", "Parameter traces")
    complete, failed = _complete(data.trials), _failed(data.trials)
    if not complete and not failed:
        return section.add(_note("No trial has finished yet: nothing to plot."))
    mapper = _score_mapper([_score(t) for t in complete]) if complete else None
    best = _ranked(data.trials)[0] if complete else None
    width = 370 if len(data.parameters) > 2 else 560
    plots = [
        _trace(name, parameter, complete, failed, best, mapper, width)
        for name, parameter in data.parameters.items()
    ]
    columns = max(1, PAGE_WIDTH // (width + 10))
    return section.add(
        _note(
            "Each point is a trial, colored by its loss (dark is better); the star is the best "
            "trial, a red x a failed trial. The vertical range is the parameter's search bounds."
        ),
        gridplot(plots, ncols=columns, toolbar_location="right"),
    )


def _trace(
    name: str,
    parameter: FreeParameter,
    complete: list[TrialRecord],
    failed: list[TrialRecord],
    best: TrialRecord | None,
    mapper: LinearColorMapper | LogColorMapper | None,
    width: int,
) -> figure:
    """One parameter's values by trial number."""
    _, seen = _values([*complete, *failed], name)
    fig = _trial_axis(
        _figure(
            name,
            "trial",
            name + (" (log scale)" if parameter.log else ""),
            width=width,
            height=250,
            y_axis_type="log" if parameter.log else "linear",
            y_range=_bounds(parameter, seen),
        )
    )
    shown = [t for t in complete if _finite(t.params.get(name))]
    if shown and mapper is not None:
        source = _trial_source(shown, [name])
        source["value"] = [float(t.params[name]) for t in shown]
        points = fig.scatter(
            "trial",
            "value",
            source=ColumnDataSource(source),
            size=7,
            color={"field": "score", "transform": mapper},
            line_color="#555",
        )
        fig.add_tools(HoverTool(renderers=[points], tooltips=TRIAL_TOOLTIPS))
    numbers, values = _values(failed, name)
    if numbers:
        fig.scatter(numbers, values, marker="x", size=9, line_width=2, color=FAILED_COLOR)
    if best is not None and _finite(best.params.get(name)):
        fig.scatter(
            [best.number],
            [float(best.params[name])],
            marker="star",
            size=16,
            color=BEST_COLOR,
            line_color="black",
        )
    return fig


# ---- the best fits ------------------------------------------------------------------------


def _best_fits(data: ReportData) -> _Section:
    """The best trials' simulations over each target's observed data: does the fit look
    right, and how much do the replicates spread?"""
    section = _Section("best-fits", "Best fits")
    ranked = [t for t in _ranked(data.trials) if t.number in data.fits]
    if ranked:
        section.add(
            _note(
                "Black dots are the observed data. For each trial shown (the best one large), "
                "thin lines are its replicates, the band their range (min to max) and the "
                "thick line their mean."
            )
        )
    else:
        section.add(_note("No simulations of the best trials were kept: the data alone."))
    for name, target in data.targets.items():
        chosen = [(t, data.fits[t.number][name]) for t in ranked if data.fits[t.number].get(name)]
        layout, messages = _target_fits(target, data.observed.get(name), chosen[:FITS_SHOWN])
        section.add(f'<h3 class="target">Target {_esc(name)}</h3>', _describe(target))
        section.add(*(_note(m) for m in messages), layout)
    return section


def _describe(target: Target) -> str:
    detail = (
        f"output <code>{_esc(target.output)}</code>, observed <code>{_esc(target.observed)}</code>"
        f" vs simulated <code>{_esc(target.simulated_column)}</code>, joined on "
        + ", ".join(f"<code>{_esc(c)}</code>" for c in target.join)
        + f"; loss {_esc(target.loss)}, weight {_esc(_fmt(target.weight))}"
    )
    return f'<p class="detail">{detail}</p>'


def _observed_y(target: Target, observed: pl.DataFrame) -> tuple[pl.Series, str]:
    """The observed values on the scale of the simulated ones: a binomial target compares
    counts of successes with a simulated probability, so its data are shown as proportions."""
    if target.trials and target.trials in observed.columns:
        values = observed[target.observed].cast(pl.Float64) / observed[target.trials].cast(
            pl.Float64
        )
        return values, f"{target.observed} / {target.trials}"
    return observed[target.observed].cast(pl.Float64), target.observed


def _replicate_stats(
    replicates: list[pl.DataFrame], join: list[str], column: str
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Per join key, the min, max and mean over the replicates; and each replicate. Numbers
    and dates are sorted, so lines run left to right; categories keep the model's order."""
    tables = [r.select([*join, pl.col(column).cast(pl.Float64)]) for r in replicates]
    dtype = tables[0].schema[join[0]]
    ordered = dtype.is_numeric() or dtype.is_temporal()
    if ordered:
        tables = [t.sort(join) for t in tables]
    stats = (
        pl.concat(tables)
        .group_by(join, maintain_order=True)
        .agg(
            pl.col(column).min().alias("low"),
            pl.col(column).max().alias("high"),
            pl.col(column).mean().alias("mean"),
        )
    )
    return (stats.sort(join) if ordered else stats), tables


def _target_fits(
    target: Target,
    observed: pl.DataFrame | None,
    chosen: list[tuple[TrialRecord, list[pl.DataFrame]]],
) -> tuple[LayoutDOM | None, list[str]]:
    """One row of plots per group of the other join columns: the best trial large, the
    next ones small, all on linked axes."""
    x, groups_by = target.join[0], target.join[1:]
    messages: list[str] = []
    needed = [*target.join, target.simulated_column]
    usable = []
    for trial, replicates in chosen:
        missing = sorted({c for r in replicates for c in needed if c not in r.columns})
        if missing:
            messages.append(f"Trial {trial.number}: its output lacks column(s) {missing}.")
        else:
            usable.append((trial, replicates))
    if observed is not None:
        missing = [c for c in [*target.join, target.observed] if c not in observed.columns]
        if missing:
            messages.append(f"The observed data lack column(s) {missing}.")
            observed = None
    if observed is None and not usable:
        return None, [*messages, "No observed data and no simulations to show."]
    groups = _groups(observed, usable, groups_by)
    if len(groups) > MAX_FACETS:
        messages.append(f"Showing {MAX_FACETS} of {len(groups)} groups of {groups_by}.")
        groups = groups[:MAX_FACETS]
    if groups_by:
        messages.append(f"Plotted against {x!r}, one row per value of {groups_by}.")
    counts = sorted({len(replicates) for _, replicates in usable})
    if counts:
        each = " or ".join(map(str, counts))
        replicates = "replicate" if counts == [1] else "replicates"
        messages.append(f"{_plural(len(usable), 'trial')} shown, with {each} {replicates} each.")
    rows = [_fit_row(target, observed, usable, groups_by, g) for g in groups]
    return gridplot(rows, toolbar_location="right"), messages


def _groups(
    observed: pl.DataFrame | None,
    chosen: list[tuple[TrialRecord, list[pl.DataFrame]]],
    columns: list[str],
) -> list[tuple[Any, ...]]:
    """The distinct values of the extra join columns, observed ones first; [()] if none."""
    if not columns:
        return [()]
    tables = [t.select(columns) for t in ([observed] if observed is not None else [])]
    tables += [r.select(columns) for _, replicates in chosen for r in replicates]
    seen = pl.concat(tables).unique(maintain_order=True).rows() if tables else []
    return seen or [()]


def _in_group(table: pl.DataFrame, columns: list[str], key: tuple[Any, ...]) -> pl.DataFrame:
    for column, value in zip(columns, key, strict=True):
        table = table.filter(pl.col(column) == value)
    return table


def _fit_row(
    target: Target,
    observed: pl.DataFrame | None,
    chosen: list[tuple[TrialRecord, list[pl.DataFrame]]],
    columns: list[str],
    key: tuple[Any, ...],
) -> list[figure]:
    """The plots of one group: one per trial shown (or the data alone), on linked axes."""
    x = target.join[0]
    data = _in_group(observed, columns, key) if observed is not None else None
    group = ", ".join(f"{c} = {_fmt(v)}" for c, v in zip(columns, key, strict=True))
    y_label = _observed_y(target, data)[1] if data is not None else target.simulated_column
    axis = _x_axis([data] if data is not None else [], chosen, x, columns, key)
    figures: list[figure] = []
    for trial, replicates in chosen or [(None, [])]:
        title = (
            "observed data" if trial is None else f"trial {trial.number}: loss {_fmt(trial.score)}"
        )
        title = f"{group}: {title}" if group else title
        width = 290 if figures else 560  # the best trial large, the next ones small
        fig = _figure(title, x, y_label, width=width, height=320, **axis)
        if figures:
            fig.x_range, fig.y_range = figures[0].x_range, figures[0].y_range
        if replicates:
            _draw_replicates(fig, [_in_group(r, columns, key) for r in replicates], target, x)
        if data is not None:
            y = _observed_y(target, data)[0]
            fig.scatter(_xs(data[x]), y.to_list(), size=6, color="black")
        figures.append(fig)
    return figures


def _x_axis(
    observed: list[pl.DataFrame],
    chosen: list[tuple[TrialRecord, list[pl.DataFrame]]],
    x: str,
    columns: list[str],
    key: tuple[Any, ...],
) -> dict[str, Any]:
    """Figure options for the x column: dates on a time axis, text as categories."""
    tables = [*observed, *(_in_group(r, columns, key) for _, rs in chosen for r in rs)]
    dtype = next((t.schema[x] for t in tables if x in t.columns), pl.Float64)
    if dtype.is_temporal():
        return {"x_axis_type": "datetime"}
    if dtype.is_numeric():
        return {}
    factors = pl.concat([t[x].cast(pl.String) for t in tables]).unique(maintain_order=True)
    return {"x_range": FactorRange(factors=factors.to_list())}


def _xs(column: pl.Series) -> list | np.ndarray:
    """x values as bokeh reads them: dates as numpy datetimes (a list of dates would be
    sent as text), categories as strings."""
    if column.dtype.is_temporal():
        return column.to_numpy()
    return column.to_list() if column.dtype.is_numeric() else column.cast(pl.String).to_list()


def _draw_replicates(fig: figure, replicates: list[pl.DataFrame], target: Target, x: str) -> None:
    """Each replicate as a thin line, their range as a band, their mean as a thick line."""
    column = target.simulated_column
    stats, tables = _replicate_stats(replicates, target.join, column)
    if stats.is_empty():
        return
    xs = _xs(stats[x])
    fig.varea(xs, stats["low"].to_list(), stats["high"].to_list(), color=FIT_COLOR, alpha=0.18)
    fig.multi_line(
        xs=[_xs(t[x]) for t in tables],
        ys=[t[column].to_list() for t in tables],
        color=FIT_COLOR,
        alpha=0.45,
        line_width=1,
    )
    fig.line(xs, stats["mean"].to_list(), color=FIT_COLOR, line_width=3)


# ---- the pair plots -----------------------------------------------------------------------


def _pair_plots(data: ReportData) -> _Section:
    """The top trials in parameter space: correlations, ridges, and parameters that are
    not identified (spread over their whole range)."""
    section = _Section("pair-plots", "Pair plots of the top trials")
    ranked = _ranked(data.trials)
    names = list(data.parameters)
    if len(ranked) < 2:
        return section.add(_note("Fewer than two complete trials: nothing to plot."))
    if len(names) == 1:
        return section.add(
            _note("One free parameter: the loss of every complete trial against it."),
            _score_vs_parameter(names[0], data.parameters[names[0]], ranked),
        )
    count = min(len(ranked), max(PAIR_MINIMUM, math.ceil(PAIR_FRACTION * len(ranked))))
    top = sorted(ranked[:count], key=lambda t: t.score, reverse=True)  # best drawn last, on top
    return section.add(
        _note(
            f"The best {count} of {len(ranked)} complete trials, colored by loss (dark is "
            "better); the star is the best trial. On the diagonal, how the values are spread."
        ),
        _corner(data.parameters, top),
    )


def _score_vs_parameter(name: str, parameter: FreeParameter, ranked: list[TrialRecord]) -> figure:
    """With one free parameter there are no pairs: the loss against the parameter instead."""
    scores = [_score(t) for t in ranked]
    fig = _figure(
        f"Loss against {name}",
        name,
        "loss (lower is better)",
        width=PAGE_WIDTH // 2,
        height=400,
        x_axis_type="log" if parameter.log else "linear",
        y_axis_type="log" if _log_spread(scores) else "linear",
    )
    source = _trial_source(ranked, [name])
    source["value"] = [_number(t.params.get(name)) for t in ranked]
    points = fig.scatter(
        "value",
        "score",
        source=ColumnDataSource(source),
        size=8,
        color={"field": "score", "transform": _score_mapper(scores)},
    )
    fig.scatter(
        [source["value"][0]],
        [scores[0]],
        marker="star",
        size=18,
        color=BEST_COLOR,
        line_color="black",
    )
    fig.add_tools(HoverTool(renderers=[points], tooltips=TRIAL_TOOLTIPS))
    return fig


def _corner(parameters: dict[str, FreeParameter], top: list[TrialRecord]) -> LayoutDOM:
    """A lower-triangle scatter matrix with histograms on the diagonal and the color scale
    in the empty corner."""
    matrix = _Matrix(parameters, top)
    last = len(parameters) - 1
    rows = [
        [
            matrix.cell(i, j) if j <= i else matrix.color_bar() if (i, j) == (0, last) else None
            for j in range(last + 1)
        ]
        for i in range(last + 1)
    ]
    return gridplot(rows, toolbar_location="right")


class _Matrix:
    """What the cells of a pair plot share: one data source, a color scale, and one range
    per parameter (for its row and its column, so zooming one cell zooms its neighbours)."""

    def __init__(self, parameters: dict[str, FreeParameter], top: list[TrialRecord]) -> None:
        self.parameters = parameters
        self.names = list(parameters)
        self.size = max(170, min(260, PAGE_WIDTH // len(self.names)))
        self.values = {
            n: [float(t.params[n]) for t in top if _finite(t.params.get(n))] for n in self.names
        }
        # a log axis only where the top trials span a decade: on less, bokeh labels its
        # ticks with rounded powers of ten (0.27 to 0.36 read as 10^-1 to 10^0)
        self.log = {
            n: bool(parameters[n].log) and bool(v) and min(v) > 0 and max(v) >= 10 * min(v)
            for n, v in self.values.items()
        }
        self.ranges = {
            n: _padded(min(v), max(v), self.log[n], 0.08) if v else Range1d(0, 1)
            for n, v in self.values.items()
        }
        self.mapper = _score_mapper([_score(t) for t in top])
        self.source = ColumnDataSource(_trial_source(top, self.names))
        for i, n in enumerate(self.names):
            self.source.data[f"p{i}"] = [_number(t.params.get(n)) for t in top]
        self.best = min(top, key=lambda t: (_score(t), t.number))

    def cell(self, i: int, j: int) -> figure:
        """Row i, column j (j <= i): labels only on the outer edge, to leave room for data."""
        x_label = self.names[j] if i == len(self.names) - 1 else ""
        if i == j:
            name = self.names[i]
            return _histogram(
                name,
                self.parameters[name],
                self.log[name],
                self.values[name],
                self.ranges[name],
                self.size,
                x_label,
            )
        return self.scatter(self.names[j], self.names[i], x_label, self.names[i] if j == 0 else "")

    def scatter(self, x: str, y: str, x_label: str, y_label: str) -> figure:
        fig = _figure(
            "",
            x_label,
            y_label,
            width=self.size,
            height=self.size,
            x_range=self.ranges[x],
            y_range=self.ranges[y],
            x_axis_type="log" if self.log[x] else "linear",
            y_axis_type="log" if self.log[y] else "linear",
        )
        points = fig.scatter(
            f"p{self.names.index(x)}",
            f"p{self.names.index(y)}",
            source=self.source,
            size=6,
            line_color="#555",
            color={"field": "score", "transform": self.mapper},
        )
        best = [self.best.params.get(x)], [self.best.params.get(y)]
        fig.scatter(*best, marker="star", size=15, color=BEST_COLOR, line_color="black")
        fig.add_tools(HoverTool(renderers=[points], tooltips=TRIAL_TOOLTIPS))
        return fig

    def color_bar(self) -> figure:
        """The color scale alone, in a figure without axes."""
        fig = figure(
            width=self.size,
            height=self.size,
            toolbar_location=None,
            outline_line_color=None,
            x_range=Range1d(0, 1),
            y_range=Range1d(0, 1),
        )
        fig.scatter([], [])  # a figure without renderers is reported as a mistake
        fig.axis.visible = False
        fig.grid.visible = False
        bar = ColorBar(color_mapper=self.mapper, title="loss", width=14, location=(0, 0))
        fig.add_layout(bar, "left")
        return fig


def _histogram(
    name: str,
    parameter: FreeParameter,
    log: bool,
    values: list[float],
    x_range: Range1d,
    size: int,
    x_label: str,
) -> figure:
    """How one parameter's values spread among the top trials (log bins on a log axis)."""
    counts, edges = _bins(values, parameter, log)
    top = max(counts, default=0) or 1
    fig = _figure(
        name,
        x_label,
        "trials",
        width=size,
        height=size,
        x_range=x_range,
        y_range=Range1d(0, top * 1.08),
        x_axis_type="log" if log else "linear",
    )
    fig.yaxis.ticker.min_interval = 1  # counts: no ticks between whole numbers
    fig.yaxis.minor_tick_line_color = None
    if values:
        fig.quad(
            top=counts,
            bottom=0,
            left=edges[:-1],
            right=edges[1:],
            color="#8c8c8c",
            line_color="white",
        )
    return fig


def _bins(values: list[float], parameter: FreeParameter, log: bool) -> tuple[list[int], list]:
    """Histogram counts and edges: one bin per whole number for a narrow int parameter,
    equal bins on the log scale for a log parameter."""
    if not values:
        return [], []
    low, high = min(values), max(values)
    if parameter.type == "int" and high - low <= 30:
        counts, edges = np.histogram(values, bins=np.arange(low - 0.5, high + 1.5))
    elif log:
        counts, edges = np.histogram(np.log10(values), bins=max(5, min(20, len(values) // 2)))
        edges = 10.0**edges
    else:
        counts, edges = np.histogram(values, bins=max(5, min(20, len(values) // 2)))
    return counts.tolist(), edges.tolist()


# ---- the tables ---------------------------------------------------------------------------


def _best_table(data: ReportData) -> _Section:
    """The best parameter sets, with each target's own (unweighted) loss."""
    section = _Section("best-trials", "Best parameter sets")
    ranked = _ranked(data.trials)[:BEST_TABLE_ROWS]
    if not ranked:
        return section.add(_note("No complete trial yet."))
    names, targets = list(data.parameters), list(data.targets)
    headers = ["rank", "trial", "loss", *map(_esc, names)]
    headers += [
        f"{_esc(t)} loss<br><small>weight {_fmt(data.targets[t].weight)}</small>" for t in targets
    ]
    rows = []
    for rank, trial in enumerate(ranked, start=1):
        cells = [str(rank), str(trial.number), _esc(_fmt(trial.score))]
        cells += [_esc(_fmt(trial.params.get(n, ""))) for n in names]
        cells += [_esc(_fmt(trial.targets[t])) if t in trial.targets else "" for t in targets]
        rows.append(cells)
    table = _table(headers, rows, numeric=set(range(len(headers))))
    return section.add(
        _note(
            "A trial's loss is the weighted sum of its targets' losses; the target columns "
            "are unweighted."
        ),
        table.replace("<tbody><tr>", '<tbody><tr class="best">', 1),
    )


def _failures(data: ReportData) -> _Section:
    """How many trials failed and why, one row per distinct reason, most frequent first."""
    section = _Section("failed-trials", "Failed trials")
    failed = _failed(data.trials)
    if not failed:
        return section.add(_note("No trial failed."))
    by_reason: dict[str, list[int]] = {}
    for trial in failed:
        by_reason.setdefault(_short(trial.reason), []).append(trial.number)
    rows = [
        [_esc(reason), str(len(numbers)), _esc(_listed(numbers))]
        for reason, numbers in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    ]
    total = len(data.trials)
    return section.add(
        f"<p>{len(failed)} of {total} trials failed.</p>",
        _table(["reason", "trials", "which"], rows, numeric={1}),
    )


def _short(reason: str | None) -> str:
    """The first line of a reason, cut to REASON_CHARS, so alike failures group together."""
    if not reason or not reason.strip():
        return "no reason recorded"
    line = reason.strip().splitlines()[0]
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


def _listed(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:TRIALS_LISTED]))
    return shown + (
        f", … ({len(numbers) - TRIALS_LISTED} more)" if len(numbers) > TRIALS_LISTED else ""
    )


def _parameters(data: ReportData) -> _Section:
    """What was searched (bounds and scale) and what every simulation was given."""
    section = _Section("parameters", "Parameters")
    ranked = _ranked(data.trials)
    rows = []
    for name, p in data.parameters.items():
        best = _fmt(ranked[0].params.get(name, "")) if ranked else ""
        scale = "log" if p.log else "linear"
        rows.append(
            [
                _esc(name),
                _esc(p.type or "float"),
                _esc(_fmt(p.low)),
                _esc(_fmt(p.high)),
                scale,
                _esc(best),
            ]
        )
    free = _table(["free parameter", "type", "low", "high", "scale", "best"], rows, {2, 3, 5})
    if data.fixed:
        fixed_rows = [[_esc(k), _esc(_fmt(v))] for k, v in data.fixed.items()]
        fixed = _table(["fixed parameter", "value"], fixed_rows, set())
    else:
        fixed = _note("No fixed parameters.")
    return section.add(f'<div class="tables">{free}{fixed}</div>')


# ---- the page -----------------------------------------------------------------------------


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #222; margin: 0; background: #fafafa; }
main { max-width: 1220px; margin: 0 auto; padding: 16px 24px 48px; background: #fff; }
h1 { font-size: 24px; margin: 8px 0 12px; }
h1 .name { font-family: ui-monospace, monospace; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-top: 8px; border-top: 1px solid #ddd; }
h3 { font-size: 15px; margin: 20px 0 4px; }
nav { font-size: 13px; margin-bottom: 8px; }
nav a { margin-right: 14px; color: #1f5fa8; text-decoration: none; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.summary dt { color: #666; }
dl.summary dd { margin: 0; }
.state { padding: 1px 8px; border-radius: 10px; background: #eee; font-weight: 600; }
.state-succeeded { background: #d9f2dd; color: #1d6b2c; }
.state-running { background: #dbe9fb; color: #1f5fa8; }
.state-partial { background: #fdf0d5; color: #8a5a00; }
.state-failed, .state-cancelled { background: #fbdcdc; color: #a11; }
.note { color: #555; margin: 4px 0 8px; }
.detail { color: #555; margin: 0 0 6px; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
tr.best { background: #fff1e6 !important; font-weight: 600; }
.tables { display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }
code { font-size: 12px; background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
"""


def _page(data: ReportData, sections: list[_Section]) -> str:
    """The document: styles and bokeh in the head, the sections in order, one script that
    draws every plot."""
    plots = {
        f"{s.id}-{i}": part
        for s in sections
        for i, part in enumerate(s.parts)
        if not isinstance(part, str)
    }
    script, divs = components(plots) if plots else ("", {})
    nav = "".join(f'<a href="#{s.id}">{_esc(s.title)}</a>' for s in sections)
    parts = [f"<nav>{nav}</nav>", _summary(data)]
    for s in sections:
        inner = "".join(
            part if isinstance(part, str) else f'<div class="plot">{divs[f"{s.id}-{i}"]}</div>'
            for i, part in enumerate(s.parts)
        )
        parts.append(f'<section id="{s.id}"><h2>{_esc(s.title)}</h2>{inner}</section>')
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Calibration {_esc(data.name)}: {_esc(data.job_id)}</title>\n"
        f"<style>{STYLE}</style>\n{JS.render_js()}\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n{script}\n</body>\n</html>\n"
    )
