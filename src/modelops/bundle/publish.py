"""From a project folder or a reference to a stored bundle: build, store or push, locate.

One place decides where a bundle goes (the registry in use, else the embedded store), so
`mops sim FOLDER`, `mops run study.toml` and `mops bundle push` agree; and every folder is
checked against its uv.lock here first (`bundle.lock`), whichever command builds it.
"""

from __future__ import annotations

from pathlib import Path

from modelops.bundle.build import build_bundle
from modelops.bundle.layout import LayoutStore
from modelops.bundle.lock import LockMode, check_lock
from modelops.bundle.registry import PushReport, push_bundle
from modelops.bundle.store_in_use import Registry, open_store, parse_reference
from modelops.contracts import BundleRef, ErrorClass, ModelOpsError
from modelops.settings import Settings


def store_locally(
    project: Path,
    settings: Settings,
    repository: str | None = None,
    tag: str | None = None,
    lock: LockMode = LockMode.UPDATE,
) -> BundleRef:
    check_lock(project, lock)
    return LayoutStore(settings.bundle_store).put(build_bundle(project, repository), tag=tag)


def push_project(
    project: Path,
    settings: Settings,
    registry: Registry | None = None,
    repository: str | None = None,
    tag: str | None = None,
    force: bool = False,
    lock: LockMode = LockMode.UPDATE,
) -> PushReport:
    client = (registry or Registry()).client(settings)
    if client is None:
        raise ModelOpsError(
            ErrorClass.BAD_INPUT,
            "no registry given: pass --registry HOST[:PORT] or set MODELOPS_BUNDLE_REGISTRY",
        )
    with client:
        check_lock(project, lock)
        return push_bundle(build_bundle(project, repository), client, tag=tag, force=force)


def resolve_bundle(
    path_or_ref: str | Path, settings: Settings, lock: LockMode = LockMode.UPDATE
) -> BundleRef:
    """A project folder is built and published to the bundle store in use (pushed, when a
    registry is configured); anything else must name a bundle in that store, checked here
    so a typo fails before any cluster starts."""
    text = str(path_or_ref)
    if Path(text).is_dir():
        if settings.bundle_registry:
            return push_project(Path(text), settings, lock=lock).ref
        return store_locally(Path(text), settings, lock=lock)
    if "@" not in text and ":" not in text:
        raise ModelOpsError(
            ErrorClass.BAD_REFERENCE,
            f"{text!r} is neither a project folder nor a bundle reference "
            "(repository@sha256:<64 hex>, or repository:tag)",
        )
    store = open_store(settings)
    ref = parse_reference(text, store)
    store.read_manifest(ref)
    return ref
