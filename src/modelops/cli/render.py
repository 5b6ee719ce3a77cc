"""How results look in a terminal and in `--json`: the one place output formats are decided.

Text that comes from a model, a bundle or a study (values, column names, logs, errors) is
printed literally: it goes to rich as `Text`, never as a string rich would read as markup,
so `[bold]` or `[/]` in a model's message is shown as written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # imported where used, so that `mops --help` loads none of them
    import polars as pl

    from modelops.api import (
        BundleCheck,
        BundleDescription,
        BundleRef,
        FailedSimulation,
        FailureSummary,
        SimReturn,
    )
    from modelops.contracts import Artifact, ErrorInfo

PREVIEW_ROWS = 5


def literal(value: object, style: str = "") -> Text:
    """`value` as text rich shows as written: no markup, no highlighting."""
    return Text(str(value), style=style)


def sim_json(bundle: BundleRef | None, result: SimReturn | None, error: ErrorInfo | None) -> dict:
    """The `mops sim --json` object; its shape is a promise to scripts (docs/wire-protocol.md)."""
    error = error or (result.error if result else None)
    outputs = result.outputs if result else {}
    return {
        "status": "ok" if error is None else "error",
        "bundle": str(bundle) if bundle else None,
        "outputs": {
            name: {"kind": art.kind.value, "rows": art.rows, "bytes": art.size}
            for name, art in sorted(outputs.items())
        },
        "error": error.to_dict() if error else None,
        "timings": result.timings if result else {},
    }


def artifact_view(name: str, artifact: Artifact) -> Any:
    from modelops.contracts import ArtifactKind

    if artifact.kind is ArtifactKind.TABLE:
        table = artifact.table()
        view = Table()
        for column in table.column_names:
            view.add_column(literal(column), justify="right")
        for row in table.slice(0, PREVIEW_ROWS).to_pylist():
            view.add_row(*(literal(v) for v in row.values()))
        if table.num_rows > PREVIEW_ROWS:
            view.add_row(*("..." for _ in table.column_names))
        return Group(Text(f"{name}: {table.num_rows} rows x {table.num_columns} columns"), view)
    text = Text(f"{name}: {artifact.size} bytes")
    try:
        preview = artifact.data[:200].decode("utf-8")
    except UnicodeDecodeError:
        return text
    if preview.isprintable():
        text.append(f"\n  {preview}" + ("..." if artifact.size > 200 else ""), style="dim")
    return text


def error_view(error: ErrorInfo) -> Any:
    parts: list[Any] = [literal(error.one_line(), style="bold red")]
    if error.traceback:
        parts.append(
            Panel(literal(error.traceback.rstrip()), title="remote traceback", border_style="red")
        )
    return Group(*parts)


def print_sim(console: Console, bundle: BundleRef, result: SimReturn) -> None:
    """Outputs, timings and model logs; the caller shows any error where errors go."""
    console.print(f"bundle  {bundle}", highlight=False, markup=False, soft_wrap=True)
    for name, artifact in sorted(result.outputs.items()):
        console.print(artifact_view(name, artifact))
    timings = ", ".join(f"{k} {v:.3f}" for k, v in result.timings.items())
    console.print(
        f"timings (s): {timings}", style="dim", highlight=False, markup=False, soft_wrap=True
    )
    if result.logs:
        logs = literal(result.logs.rstrip())
        console.print(Panel(logs, title="model logs (tail)", border_style="dim"))


def bundle_view(description: BundleDescription) -> Any:
    config = description.config
    env = config.environment
    head = Text()
    head.append(f"bundle       {description.ref}\n")
    wire = config.wire or "a package's 'modelops.wire' entry point, found in its environment"
    head.append(f"wire         {wire}\n")
    head.append(f"environment  {env.kind} ({', '.join(env.files) or 'no files'})\n")
    head.append(f"lock digest  {env.lock_digest}\n")
    head.append(f"created by   modelops, bundle format {config.format}\n")
    head.append(f"size         {description.size:,} bytes in {len(description.layers)} layers")
    files = Table(title_justify="left")
    files.add_column("file")
    files.add_column("bytes", justify="right")
    files.add_column("mode")
    for entry in config.files:
        files.add_row(literal(entry.path), f"{entry.size:,}", oct(entry.mode)[2:])
    return Group(head, files)


def print_check(console: Console, check: BundleCheck) -> None:
    """`mops bundle check`: each SDK model and the entrypoints that run it; for any other
    bundle, one line naming its wire (imported, never called)."""
    console.print(f"bundle  {check.ref}", highlight=False, markup=False, soft_wrap=True)
    if check.models is None:
        console.print(
            f"{check.wire_source} — not an SDK bundle: its entrypoints are whatever its wire "
            "function accepts",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return
    for target, model in check.models.items():
        console.print(models_view(target, model))
    console.print(entrypoints_line(check), highlight=False, markup=False, soft_wrap=True)


def entrypoints_line(check: BundleCheck) -> str:
    """Every entrypoint as typed; with one model, an empty entrypoint runs its baseline."""
    listed = check.entrypoints()
    if len(check.models or {}) == 1:
        listed[0] += " (the default)"
    return f"entrypoints  {', '.join(listed)}"


def models_view(target: str, model: dict) -> Any:
    """One SDK model as `mops bundle check` shows it."""
    title = literal(f"{target}  {model.get('doc', '')}".rstrip())
    table = Table(title=title, title_justify="left")
    for column in ("parameter", "kind", "low", "high", "default", "log", "doc"):
        table.add_column(column)
    for name, param in model["params"].items():
        table.add_row(
            literal(name),
            literal(param["kind"]),
            literal(param["low"]),
            literal(param["high"]),
            literal(param["default"]),
            "yes" if param["log"] else "",
            literal(param["doc"]),
        )
    lines = Text()
    lines.append(f"scenarios  {', '.join(model['scenarios']) or '-'}\n")
    lines.append(f"outputs    {', '.join(model['outputs']) or '-'}\n")
    config = ", ".join(f"{k}={v}" for k, v in model["config"].items())
    lines.append(f"config     {config or '-'}")
    return Group(table, lines)


# -- a job's results and failures ---------------------------------------------------------

META_COLUMNS = ("job_id", "sim_id", "param_set", "replicate", "seed")
SIMULATIONS_PRIORITY = (
    "param_set",
    "replicate",
    "status",
    "error_class",
    "error_message",
    "attempts",
    "total_s",
    "seed",
    "sim_id",
    "params_json",
    "cached_from",
    "worker",
    "error_type",
    "fetch_s",
    "env_s",
    "start_s",
    "wire_s",
    "error_traceback",  # many lines: last, shown only on a terminal wide enough for them
    "logs",
)
NEVER_BY_DEFAULT = frozenset({"job_id"})  # one value: the job's


def column_priority(
    columns: Sequence[str], parameters: Iterable[str], *, simulations: bool = False
) -> list[str]:
    """The columns worth showing first when not all fit: where a row sits in the study, the
    model's own columns, the parameters, then the seed and the simulation id (32 characters
    nobody reads); for the simulations table, status and error before timings, tracebacks and
    logs. `job_id` (one value, the job's) is shown only when asked for."""
    shown = [name for name in columns if name not in NEVER_BY_DEFAULT]
    if simulations:
        first = [name for name in SIMULATIONS_PRIORITY if name in shown]
        return first + [name for name in shown if name not in first]
    params = set(parameters)

    def is_param(name: str) -> bool:
        while name not in params and name.startswith("param_"):
            name = name.removeprefix("param_")
        return name in params

    model = [name for name in shown if name not in META_COLUMNS and not is_param(name)]
    return [
        *(name for name in ("param_set", "replicate") if name in shown),
        *model,
        *(name for name in shown if name not in META_COLUMNS and is_param(name)),
        *(name for name in ("seed", "sim_id") if name in shown),
    ]


def cell(value: object) -> str:
    """One value as the terminal shows it: whole, floats to 6 significant digits."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return ""
    return str(value)


def _table(frame: pl.DataFrame, columns: Sequence[str]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in columns:  # model text, all of it: shown as written, never as markup
        numeric = frame.schema[name].is_numeric()
        table.add_column(literal(name), justify="right" if numeric else "left", overflow="fold")
    for row in frame.select(columns).iter_rows():
        table.add_row(*(literal(cell(value)) for value in row))
    return table


def fitted_table(
    console: Console, frame: pl.DataFrame, priority: Sequence[str], chosen: Sequence[str] | None
) -> tuple[Table, list[str]]:
    """A table of `frame` that fits the console: the `chosen` columns as asked, or as many
    of `priority` as fit at their full width, in the frame's order; and the columns left out.
    A cell is never cut short: a column that does not fit whole is left out instead (only a
    first column wider than the terminal, or columns chosen by hand, are folded)."""
    if chosen is not None:
        return _table(frame, chosen), [name for name in frame.columns if name not in chosen]
    wide = console.options.update_width(10**6)
    kept: list[str] = []
    for name in priority:
        trial = [column for column in frame.columns if column in kept or column == name]
        if not kept or console.measure(_table(frame, trial), options=wide).maximum <= console.width:
            kept = trial
    return _table(frame, kept), [name for name in frame.columns if name not in kept]


def hidden_note(hidden: Sequence[str]) -> Text:
    """`+N columns hidden: ...` and how to choose them."""
    note = Text(f"+{len(hidden)} column{'s' if len(hidden) != 1 else ''} hidden: ", style="dim")
    note.append(", ".join(hidden))
    note.append("; choose columns with --columns a,b,c", style="dim")
    return note


def scriptable(frame: pl.DataFrame, fmt: str) -> str:
    """`frame` as one JSON document (a list of row objects) or as CSV: binary values as
    base64; for CSV, lists and structs as JSON text."""
    import polars as pl

    converted = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if dtype == pl.Binary:
            converted.append(column.bin.encode("base64"))
        elif fmt == "csv" and dtype.is_nested():
            text = pl.struct(column.alias("v")).struct.json_encode()
            text = text.str.strip_prefix('{"v":').str.strip_suffix("}")
            converted.append(pl.when(column.is_null()).then(None).otherwise(text).alias(name))
        else:
            converted.append(column)
    ready = frame.select(converted)
    return ready.write_csv() if fmt == "csv" else ready.write_json() + "\n"


def params_text(params: dict[str, Any]) -> str:
    """`beta=0.5 days=90`: each value as JSON, as `mops sim -p` takes it."""
    return " ".join(
        f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in params.items()
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _first_line(message: str | None) -> tuple[str, int]:
    lines = (message or "").strip().splitlines() or [""]
    return lines[0], len(lines) - 1


def failures_view(summary: FailureSummary, job_id: str) -> Text:
    """`mops run` and `mops jobs show`: the largest groups of failures, each with its count,
    one example (parameters, seed, end of the traceback) and the command that shows more."""
    text = Text()
    text.append(f"{_plural(summary.failed, 'simulation')} failed", style="bold red")
    text.append(f", {_plural(summary.total_groups, 'cause')}:" if summary.total_groups else ":")
    for group in summary.groups:
        example = group.example
        first, more_lines = _first_line(example.message)
        text.append("\n\n")
        text.append(f"{group.count} \u00d7 {example.error_class}: {first}", style="bold")
        if more_lines:
            text.append(f" (+{_plural(more_lines, 'line')})", style="dim")
        if group.messages > 1:
            text.append(f"  ({group.messages} variants of this message)", style="dim")
        text.append(
            f"\n  e.g. sim {example.short_id}: param set {example.param_set}, "
            f"replicate {example.replicate}, seed {example.seed}"
        )
        if example.params:
            text.append(f"\n  params: {params_text(example.params)}")
        for line in example.traceback_tail():
            text.append(f"\n    {line}", style="dim")
        text.append(f"\n  more: mops jobs errors {job_id} --sim {example.short_id}")
    if summary.more_groups:
        text.append(
            f"\n\nand {_plural(summary.more_groups, 'more cause')}: "
            f"mops jobs errors {job_id} lists every failed simulation"
        )
    return text


def errors_table(sims: Iterable[FailedSimulation]) -> Table:
    """`mops jobs errors`: one line per failed simulation; the message is what gives way
    when the terminal is narrow (cut with `…`: `--sim` shows it whole)."""
    rows = [
        (
            sim.short_id,
            str(sim.param_set),
            str(sim.replicate),
            str(sim.seed),
            sim.error_class or "",
            _first_line(sim.message)[0],
        )
        for sim in sims
    ]
    table = Table(box=None, pad_edge=False, header_style="bold", expand=True)
    for n, (name, justify) in enumerate(
        (("sim", "left"), ("set", "right"), ("rep", "right"), ("seed", "right"), ("class", "left"))
    ):
        width = max([len(name), *(len(row[n]) for row in rows)])
        table.add_column(name, justify=justify, no_wrap=True, min_width=width)
    table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
    for row in rows:
        table.add_row(*(literal(value) for value in row))
    return table


def simulation_view(sim: FailedSimulation, job_id: str) -> Text:
    """`mops jobs errors JOB --sim SIM`: one simulation in full, model text as written."""
    text = Text()
    attempts = f" after {_plural(sim.attempts, 'attempt')}" if sim.attempts else ""
    text.append(f"simulation {sim.sim_id} of job {job_id}: {sim.status}{attempts}", style="bold")
    text.append(f"\nparam set {sim.param_set}, replicate {sim.replicate}, seed {sim.seed}")
    text.append(f"\nparams: {params_text(sim.params)}")
    if sim.worker:
        text.append(f"\nworker: {sim.worker}")
    if sim.error_class is not None:
        text.append(f"\n\n{sim.error_class}: {sim.message}", style="bold red")
        text.append("\n\ntraceback:\n", style="bold")
        text.append((sim.traceback or "(none: the process ended without one)").rstrip())
    text.append("\n\nlogs:\n", style="bold")
    text.append((sim.logs or "(none)").rstrip())
    return text
