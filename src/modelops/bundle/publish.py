"""From a project folder or a reference to a stored bundle: build, store or push, locate.

One place decides where a bundle goes (the registry in use, else the embedded store), so
`mops sim FOLDER`, `mops run study.toml` and `mops bundle push` agree; and every folder is
checked against its uv.lock here first (`bundle.lock`), whichever command builds it.
"""

from __future__ import annotations

from pathlib import Path

from modelops.bundle.build import BuiltBundle, build_bundle
from modelops.bundle.inspect import BundleDescription, describe_built, describe_bundle
from modelops.bundle.layout import LayoutStore
from modelops.bundle.lock import LockMode, check_lock
from modelops.bundle.registry import PushReport, RegistrySource, push_bundle
from modelops.bundle.store_in_use import Registry, StoreInUse, parse_reference
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
    path_or_ref: str | Path, store: StoreInUse, lock: LockMode = LockMode.UPDATE
) -> BundleDescription:
    """A project folder is built and published to `store`, the bundle store in use (pushed,
    when it is a registry); anything else must name a bundle in it, checked here so a typo
    fails before any cluster starts. Either way the bundle comes back described, its
    manifest and config read at most once (a folder's not at all), for the caller to pass
    down rather than read again."""
    text = str(path_or_ref)
    if Path(text).is_dir():
        return describe_built(_publish(Path(text), store, lock))
    if "@" not in text and ":" not in text:
        raise ModelOpsError(
            ErrorClass.BAD_REFERENCE,
            f"{text!r} is neither a project folder nor a bundle reference "
            "(repository@sha256:<64 hex>, or repository:tag)",
        )
    return describe_bundle(parse_reference(text, store), store)


def _publish(project: Path, store: StoreInUse, lock: LockMode) -> BuiltBundle:
    """Into the store the caller opened: stored in the embedded folder, or pushed to the
    registry it is; the built bundle is returned, so nothing needs reading back."""
    check_lock(project, lock)
    bundle = build_bundle(project)
    if isinstance(store, RegistrySource):
        push_bundle(bundle, store.client)
    else:
        store.put(bundle)
    return bundle
