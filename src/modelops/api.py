"""The Python API behind `mops`: build, publish and inspect bundles, run simulations."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelops.bundle import LayoutStore, fetch_bundle, publish
from modelops.bundle.inspect import BundleDescription, describe_bundle
from modelops.bundle.lock import LockMode
from modelops.bundle.registry import Credentials, PushReport, RegistryClient, RegistryHost
from modelops.bundle.registry.credentials import store_credentials
from modelops.bundle.store_in_use import open_store, parse_reference
from modelops.cluster import open_cluster, run_tasks
from modelops.contracts import (
    BundleRef,
    ErrorClass,
    ModelOpsError,
    RunLimits,
    SimReturn,
    SimTask,
)
from modelops.runtime.describe import BundleCheck
from modelops.runtime.describe import check_bundle as runtime_check_bundle
from modelops.settings import Settings


def build(
    project: Path,
    repository: str | None = None,
    tag: str | None = None,
    lock: LockMode = LockMode.UPDATE,
) -> BundleRef:
    """Build a bundle from a project folder and put it in the embedded bundle store; a
    uv.lock out of date with pyproject.toml is locked again first (see `LockMode`)."""
    return publish.store_locally(project, Settings.from_env(), repository, tag, lock)


def push(
    project: Path,
    registry: str | None = None,
    repository: str | None = None,
    tag: str | None = None,
    force: bool = False,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    lock: LockMode = LockMode.UPDATE,
) -> PushReport:
    """Build a bundle and push it to a registry (the flag, else MODELOPS_BUNDLE_REGISTRY)."""
    return publish.push_project(
        project,
        Settings.from_env(),
        registry,
        repository,
        tag,
        force,
        insecure,
        username,
        password,
        lock,
    )


def pull(
    reference: str, dest: Path | None = None, registry: str | None = None, **access: Any
) -> tuple[BundleRef, Path]:
    """Fetch a bundle (verified, through this machine's cache) and copy its files to `dest`
    (default: a folder named after the repository), which must not exist or be empty."""
    settings = Settings.from_env()
    store = open_store(settings, registry, **access)
    ref = parse_reference(reference, store)
    target = Path(dest) if dest else Path(ref.repository.rsplit("/", 1)[-1])
    if target.exists() and any(target.iterdir()):
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            f"{target} already exists and is not empty; choose another --dest",
        )
    fetched = fetch_bundle(ref, store, settings.cache)
    shutil.copytree(fetched.root, target, dirs_exist_ok=True)
    return ref, target


def inspect(reference: str, registry: str | None = None, **access: Any) -> BundleDescription:
    store = open_store(Settings.from_env(), registry, **access)
    return describe_bundle(parse_reference(reference, store), store)


def list_bundles(registry: str | None = None, **access: Any) -> list[tuple[str, list[str]]]:
    """(repository, tags-or-digests) for every bundle the store will list."""
    store = open_store(Settings.from_env(), registry, **access)
    if isinstance(store, LayoutStore):
        listed: dict[str, list[str]] = {}
        for ref, tag in store.refs():
            listed.setdefault(ref.repository, []).append(tag or ref.digest)
        return sorted(listed.items())
    client = store.client
    return [(name, _tags_of(client, name)) for name in sorted(client.repositories())]


def _tags_of(client: RegistryClient, repository: str) -> list[str]:
    """A repository holding only untagged bundles has no tag list (distribution answers
    404): it is listed with no tags, not an error."""
    try:
        return sorted(client.tags(repository))
    except ModelOpsError as exc:
        if exc.info.error_class is ErrorClass.NOT_FOUND:
            return []
        raise


def login(registry: str, username: str, password: str, insecure: bool = False) -> str:
    """Check the credentials against the registry, then store them the Docker way."""
    host = RegistryHost.parse(registry, insecure=insecure)
    credentials = Credentials(username, password)
    with RegistryClient(host, credentials) as client:
        client.check()
    return store_credentials(host, credentials)


def resolve(path_or_ref: str, lock: LockMode = LockMode.UPDATE) -> BundleRef:
    """A project folder is built and published; a reference must name a stored bundle."""
    return publish.resolve_bundle(path_or_ref, Settings.from_env(), lock)


def simulate(
    bundle: BundleRef,
    entrypoint: str = "",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    outputs: Iterable[str] | None = None,
    scheduler: str | None = None,
    limits: RunLimits | None = None,
) -> SimReturn:
    """Run one simulation through the full worker path (plugin, env, warm child)."""
    task = SimTask(
        bundle,
        entrypoint,
        params or {},
        seed,
        config or {},
        tuple(outputs) if outputs is not None else None,
        limits or RunLimits(),
    )
    with open_cluster(scheduler, n_workers=1) as client:
        return next(run_tasks(client, [task]))


def check_bundle(path_or_ref: str, lock: LockMode = LockMode.UPDATE) -> BundleCheck:
    """Build the bundle's environment and import its wire in a child; for an SDK bundle,
    import every declared model and return what each declares, so a missing dependency or
    a typo shows before any job. Another bundle's wire is imported, never called: its
    entrypoints are whatever it accepts (`models` is None)."""
    settings = Settings.from_env()
    ref = publish.resolve_bundle(path_or_ref, settings, lock)
    return runtime_check_bundle(ref, open_store(settings), settings.cache)
