"""`mops study sample`: write a study file for the common cases from the command line."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from modelops.cli.common import errors_end_the_command, stderr

study_app = typer.Typer(no_args_is_help=True, help="Write study files.")


@study_app.command("sample")
def sample(
    bundle: Annotated[str, typer.Option(help="Project folder or repository@sha256:…")],
    out: Annotated[Path, typer.Option("--out", help="The study file to write.")],
    sampler: Annotated[str, typer.Option(help="list, grid, uniform, lhs or sobol.")] = "sobol",
    n: Annotated[int | None, typer.Option(help="Parameter sets (uniform, lhs, sobol).")] = None,
    dim: Annotated[
        list[str] | None,
        typer.Option(help="name=LOW:HIGH, name=int:LOW:HIGH, name=log:LOW:HIGH, grid: :POINTS."),
    ] = None,
    fixed: Annotated[list[str] | None, typer.Option(help="name=value, repeatable.")] = None,
    replicates: Annotated[int, typer.Option(min=1)] = 1,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    seed_bits: Annotated[
        int, typer.Option(help="Simulation seed width: 32, or 64 for models that take it.")
    ] = 32,
    entrypoint: Annotated[str, typer.Option()] = "",
    output: Annotated[list[str] | None, typer.Option("--output", help="Requested outputs.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write a study file: a sampler over parameter ranges, fixed values, replicates, seed."""
    from modelops import api

    with errors_end_the_command(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", api.StudyWarning)
        spec = api.sample_study(
            bundle,
            sampler=sampler,
            n=n,
            dims=dim or [],
            fixed=fixed or [],
            replicates=replicates,
            seed=seed,
            seed_bits=seed_bits,
            entrypoint=entrypoint,
            outputs=output or None,
            out=out,
            force=force,
        )
    for warning in caught:
        stderr.print(f"warning: {warning.message}", highlight=False, soft_wrap=True)
    stderr.print(f"wrote {out}: {spec.n_simulations} simulations", highlight=False)
