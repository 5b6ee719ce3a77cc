"""Pushing and pulling through registries that want credentials: htpasswd (HTTP basic) and the
Docker bearer-token flow, including tokens that expire while a client is in use.

Every test talks to a real `docker-registry` process (tests/registry_servers.py); nothing is
mocked. Pulls run against a fresh MODELOPS_HOME so they cannot be served from a cache filled
by an earlier test and really go to the registry.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import SMOKE_BUNDLE
from tests.registry_servers import RunningRegistry, run_registry

from modelops import api
from modelops.api import Registry
from modelops.bundle import build_bundle
from modelops.bundle.build import BuiltBundle
from modelops.bundle.registry import RegistryClient, RegistryHost, push_bundle
from modelops.bundle.registry.client import UPLOAD_CHUNK
from modelops.bundle.registry.credentials import resolve_credentials
from modelops.bundle.store_in_use import registry_client
from modelops.contracts import ErrorClass, ModelOpsError

TOKEN_TTL_S = 2
# The client treats a token as stale at max(ttl - 10, ttl / 2) = 1 s; the registry refuses it
# after 2 s. Sleeping 3 s puts both past expiry.
PAST_EXPIRY_S = 3.0


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (no caches) as relative path -> bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def creds(registry: RunningRegistry) -> dict[str, str]:
    assert registry.username is not None and registry.password is not None
    return {"username": registry.username, "password": registry.password}


def unique_tag() -> str:
    return f"t-{secrets.token_hex(4)}"


def everything_said(exc: ModelOpsError) -> str:
    """All text an error carries: message, repr, stored traceback and the formatted chain."""
    return "\n".join(
        [
            str(exc),
            repr(exc),
            repr(exc.info),
            exc.info.message,
            exc.info.traceback,
            "".join(traceback.format_exception(exc)),
        ]
    )


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MODELOPS_HOME for this test: pulls must fetch from the registry."""
    home = tmp_path / "modelops-home"
    monkeypatch.setenv("MODELOPS_HOME", str(home))
    return home


def push_pull_round_trip(registry: RunningRegistry, dest: Path) -> None:
    tag = unique_tag()
    report = api.push(SMOKE_BUNDLE, registry=Registry(registry.host, **creds(registry)), tag=tag)
    assert report.ref.repository == "smoke-bundle"
    assert report.registry == registry.host
    assert report.tag == tag
    assert registry.password not in repr(report)

    ref, target = api.pull(
        f"smoke-bundle:{tag}",
        dest=dest / "by-tag",
        registry=Registry(registry.host, **creds(registry)),
    )
    assert ref == report.ref
    assert target == dest / "by-tag"
    assert tree_files(target) == tree_files(SMOKE_BUNDLE)

    ref2, target2 = api.pull(
        str(report.ref),
        dest=dest / "by-digest",
        registry=Registry(registry.host, **creds(registry)),
    )
    assert ref2 == report.ref
    assert tree_files(target2) == tree_files(SMOKE_BUNDLE)
    assert registry.password not in repr(ref) + repr(ref2) + repr(target) + repr(target2)

    description = api.inspect(str(report.ref), registry=Registry(registry.host, **creds(registry)))
    assert description.ref == report.ref
    assert registry.password not in repr(description)


# --- HTTP basic (htpasswd) -------------------------------------------------------------------


def test_basic_push_and_pull_round_trip(
    basic_registry: RunningRegistry, fresh_home: Path, tmp_path: Path
) -> None:
    push_pull_round_trip(basic_registry, tmp_path)


def test_basic_anonymous_push_fails_with_auth_error_and_the_fix(
    basic_registry: RunningRegistry,
) -> None:
    host = basic_registry.host
    with pytest.raises(ModelOpsError) as caught:
        api.push(SMOKE_BUNDLE, registry=host)
    info = caught.value.info
    assert info.error_class is ErrorClass.REGISTRY_AUTH
    assert f"authentication failed for {host} (HTTP 401)" in info.message
    assert f"mops bundle login {host}" in info.message
    assert "MODELOPS_REGISTRY_USERNAME/PASSWORD" in info.message
    assert "\n" not in info.message
    assert str(caught.value).startswith("registry_auth: authentication failed for ")


def test_basic_anonymous_pull_fails_with_auth_error(
    basic_registry: RunningRegistry, fresh_home: Path, tmp_path: Path
) -> None:
    report = api.push(SMOKE_BUNDLE, registry=Registry(basic_registry.host, **creds(basic_registry)))
    with pytest.raises(ModelOpsError) as caught:
        api.pull(str(report.ref), dest=tmp_path / "out", registry=basic_registry.host)
    assert caught.value.info.error_class is ErrorClass.REGISTRY_AUTH
    assert f"authentication failed for {basic_registry.host} (HTTP 401)" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_basic_wrong_password_fails_and_never_shows_the_password(
    basic_registry: RunningRegistry, fresh_home: Path, tmp_path: Path
) -> None:
    assert basic_registry.username is not None
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    host = basic_registry.host

    with pytest.raises(ModelOpsError) as caught:
        api.push(SMOKE_BUNDLE, registry=Registry(host, basic_registry.username, wrong))
    info = caught.value.info
    assert info.error_class is ErrorClass.REGISTRY_AUTH
    assert f"authentication failed for {host} (HTTP 401)" in info.message
    assert wrong not in everything_said(caught.value)

    # The objects a caller gets hold of on the way carry no password either.
    resolved = resolve_credentials(RegistryHost.parse(host), basic_registry.username, wrong)
    assert resolved is not None and resolved.password == wrong
    assert wrong not in repr(resolved) + str(resolved)
    with registry_client(host, username=basic_registry.username, password=wrong) as client:
        assert wrong not in repr(client) + repr(client.host)
        with pytest.raises(ModelOpsError) as checked:
            client.check()
    assert checked.value.info.error_class is ErrorClass.REGISTRY_AUTH
    assert wrong not in everything_said(checked.value)

    # Pulls and inspects with the wrong password fail the same way, just as quietly.
    good = api.push(SMOKE_BUNDLE, registry=Registry(host, **creds(basic_registry)))
    for call in (
        lambda: api.pull(
            str(good.ref),
            dest=tmp_path / "out",
            registry=Registry(host, basic_registry.username, wrong),
        ),
        lambda: api.inspect(str(good.ref), registry=Registry(host, basic_registry.username, wrong)),
        lambda: api.list_bundles(Registry(host, basic_registry.username, wrong)),
    ):
        with pytest.raises(ModelOpsError) as again:
            call()
        assert again.value.info.error_class is ErrorClass.REGISTRY_AUTH
        assert wrong not in everything_said(again.value)


def test_basic_list_bundles_with_credentials(basic_registry: RunningRegistry) -> None:
    tag = unique_tag()
    api.push(SMOKE_BUNDLE, registry=Registry(basic_registry.host, **creds(basic_registry)), tag=tag)
    listed = dict(api.list_bundles(Registry(basic_registry.host, **creds(basic_registry))))
    assert tag in listed["smoke-bundle"]


# --- bearer tokens ---------------------------------------------------------------------------


def test_token_push_and_pull_round_trip(
    token_registry: RunningRegistry, fresh_home: Path, tmp_path: Path
) -> None:
    before = token_registry.tokens_issued
    push_pull_round_trip(token_registry, tmp_path)
    assert token_registry.tokens_issued > before  # the token flow was really used


def test_token_list_bundles_asks_for_catalog_access(token_registry: RunningRegistry) -> None:
    tag = unique_tag()
    api.push(SMOKE_BUNDLE, registry=Registry(token_registry.host, **creds(token_registry)), tag=tag)
    listed = dict(api.list_bundles(Registry(token_registry.host, **creds(token_registry))))
    assert tag in listed["smoke-bundle"]


def test_token_wrong_password_names_the_token_service(token_registry: RunningRegistry) -> None:
    assert token_registry.username is not None
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    host = token_registry.host
    with pytest.raises(ModelOpsError) as caught:
        api.push(SMOKE_BUNDLE, registry=Registry(host, token_registry.username, wrong))
    info = caught.value.info
    assert info.error_class is ErrorClass.REGISTRY_AUTH
    assert f"authentication failed for {host} (HTTP 401 from its token service)" in info.message
    assert "check the credentials" in info.message
    assert "\n" not in info.message
    assert wrong not in everything_said(caught.value)


def test_token_anonymous_push_says_to_log_in(token_registry: RunningRegistry) -> None:
    host = token_registry.host
    with pytest.raises(ModelOpsError) as caught:
        api.push(SMOKE_BUNDLE, registry=host)
    info = caught.value.info
    assert info.error_class is ErrorClass.REGISTRY_AUTH
    assert f"authentication failed for {host}" in info.message
    assert "token service" in info.message
    assert "no credentials were found" in info.message
    assert f"mops bundle login {host}" in info.message
    assert "MODELOPS_REGISTRY_USERNAME/PASSWORD" in info.message


# --- token expiry ------------------------------------------------------------------------------


@dataclass
class ExpiredTokens:
    """A short-lived-token registry and one client whose cached tokens have all expired."""

    registry: RunningRegistry
    client: RegistryClient
    read_bundle: BuiltBundle  # pushed to `read-repo` before the tokens expired
    upload_bundle: BuiltBundle  # pushed to `upload-repo` before the tokens expired
    workdir: Path


def _copy_of_smoke(root: Path, extra: dict[str, str] | None = None) -> Path:
    shutil.copytree(SMOKE_BUNDLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def expired_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExpiredTokens]:
    """Push to two repositories with one client, then wait until every token it holds expired.

    One wait serves both tests: tokens are cached per repository, so the read test refreshing
    `read-repo` leaves the `upload-repo` token expired for the upload test.
    """
    workdir = tmp_path_factory.mktemp("short-tokens")
    with run_registry(workdir, auth="token", token_ttl_s=TOKEN_TTL_S) as running:
        client = registry_client(running.host, **creds(running))
        with client:
            read_bundle = build_bundle(SMOKE_BUNDLE, repository="read-repo")
            upload_bundle = build_bundle(SMOKE_BUNDLE, repository="upload-repo")
            push_bundle(read_bundle, client)
            push_bundle(upload_bundle, client)
            assert running.tokens_issued >= 2
            time.sleep(PAST_EXPIRY_S)
            yield ExpiredTokens(running, client, read_bundle, upload_bundle, workdir)


def test_reads_after_token_expiry_fetch_a_new_token(expired_tokens: ExpiredTokens) -> None:
    client, bundle = expired_tokens.client, expired_tokens.read_bundle
    before = expired_tokens.registry.tokens_issued

    manifest = client.get_manifest(bundle.ref.repository, bundle.ref.digest)
    assert manifest.data == bundle.manifest
    assert manifest.digest == bundle.ref.digest

    for blob in bundle.blobs:
        data = b"".join(client.blob_chunks(bundle.ref.repository, blob.digest))
        assert sha256(data) == blob.digest
        assert len(data) == blob.size

    assert expired_tokens.registry.tokens_issued > before


def test_upload_after_token_expiry_fetches_a_new_token(expired_tokens: ExpiredTokens) -> None:
    client = expired_tokens.client
    changed_root = _copy_of_smoke(
        expired_tokens.workdir / "changed", {"notes.txt": "changed after the token expired\n"}
    )
    changed = build_bundle(changed_root, repository="upload-repo")
    assert changed.ref.digest != expired_tokens.upload_bundle.ref.digest
    before = expired_tokens.registry.tokens_issued

    report = push_bundle(changed, client, tag="after-expiry")

    assert report.uploaded  # at least the new tree layer and config went up
    assert report.manifest_uploaded
    assert client.manifest_digest("upload-repo", "after-expiry") == changed.ref.digest
    assert client.get_manifest("upload-repo", changed.ref.digest).data == changed.manifest
    assert expired_tokens.registry.tokens_issued > before


def test_token_expiring_between_upload_chunks_is_refreshed(tmp_path: Path) -> None:
    """A data file larger than one upload chunk whose first chunk outlives the token."""
    size = UPLOAD_CHUNK + 1
    data = b"\x00" * size
    digest = sha256(data)

    def slow_read_range(start: int, end: int) -> Iterator[bytes]:
        if start == 0:
            time.sleep(1.5)  # past the client's refresh point (1 s), short of the registry's
        yield data[start:end]

    with (
        run_registry(tmp_path, auth="token", token_ttl_s=TOKEN_TTL_S) as running,
        registry_client(running.host, **creds(running)) as client,
    ):
        client.upload_blob("big-repo", digest, size, slow_read_range)
        assert client.has_blob("big-repo", digest)
