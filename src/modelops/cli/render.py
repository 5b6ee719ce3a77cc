"""How results look in a terminal and in `--json`: the one place output formats are decided.

Text that comes from a model, a bundle or a study (values, column names, logs, errors) is
printed literally: it goes to rich as `Text`, never as a string rich would read as markup,
so `[bold]` or `[/]` in a model's message is shown as written.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from modelops.bundle.inspect import BundleDescription
from modelops.contracts import Artifact, ArtifactKind, BundleRef, ErrorInfo, SimReturn
from modelops.runtime.describe import BundleCheck
from modelops.sdk.wire import entrypoints

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
    console.print(entrypoints_line(check.models), highlight=False, markup=False, soft_wrap=True)


def entrypoints_line(models: dict[str, dict]) -> str:
    """Every entrypoint as typed; with one model, an empty entrypoint runs its baseline."""
    listed = entrypoints({target: model["scenarios"] for target, model in models.items()})
    if len(models) == 1:
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
