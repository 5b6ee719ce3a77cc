"""The Python API behind `mops`: build and store bundles, run simulations on a cluster."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from modelops.bundle import LayoutStore, build_bundle
from modelops.cluster import open_cluster, run_tasks
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError, SimReturn, SimTask
from modelops.settings import Settings


def build(project: Path, repository: str | None = None, tag: str | None = None) -> BundleRef:
    """Build a bundle from a project folder and put it in the embedded bundle store."""
    store = LayoutStore(Settings.from_env().bundle_store)
    return store.put(build_bundle(project, repository), tag=tag)


def resolve(path_or_ref: str) -> BundleRef:
    """A project folder is built and stored; anything else must be a reference to a bundle
    in the store, checked here so a typo fails before any cluster starts."""
    if Path(path_or_ref).is_dir():
        return build(Path(path_or_ref))
    if "@" not in path_or_ref:
        raise ModelOpsError(
            ErrorClass.BAD_REFERENCE,
            f"{path_or_ref!r} is neither a project folder nor a bundle reference "
            "(repository@sha256:<64 hex>)",
        )
    ref = BundleRef.parse(path_or_ref)
    LayoutStore(Settings.from_env().bundle_store).read_manifest(ref)
    return ref


def simulate(
    bundle: BundleRef,
    entrypoint: str = "",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    outputs: Iterable[str] | None = None,
    scheduler: str | None = None,
) -> SimReturn:
    """Run one simulation through the full worker path (plugin, env, warm child)."""
    task = SimTask(
        bundle,
        entrypoint,
        params or {},
        seed,
        config or {},
        tuple(outputs) if outputs is not None else None,
    )
    with open_cluster(scheduler, n_workers=1) as client:
        return next(run_tasks(client, [task]))


def simulate_many(
    tasks: Iterable[SimTask], scheduler: str | None = None, n_workers: int | None = None
) -> Iterator[SimReturn]:
    with open_cluster(scheduler, n_workers=n_workers) as client:
        yield from run_tasks(client, tasks)
