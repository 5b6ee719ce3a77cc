"""What a user sees when the registry misbehaves: stopped mid-pull, unreachable, HTML pages."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.registry_servers import RunningRegistry

from modelops.bundle.registry import RegistryClient, RegistryHost
from modelops.bundle.store_in_use import open_store
from modelops.contracts import ErrorClass, ModelOpsError
from modelops.settings import Settings

BLOB_SIZE = 96 << 20  # large enough that stopping the registry cuts the transfer short


def upload(client: RegistryClient, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.upload_blob(repository, digest, len(data), lambda s, e: iter([data[s:e]]))
    return digest


@pytest.fixture
def big_blob(own_registry: RunningRegistry) -> tuple[RegistryClient, str, bytes]:
    client = RegistryClient(RegistryHost.parse(own_registry.host), retries=3, backoff_s=0.2)
    data = hashlib.sha256(b"seed").digest() * (BLOB_SIZE // 32)
    return client, upload(client, "faults", data), data


def test_registry_stopped_mid_pull_is_retried_then_named(
    own_registry: RunningRegistry, big_blob: tuple[RegistryClient, str, bytes]
) -> None:
    client, digest, data = big_blob
    chunks = client.blob_chunks("faults", digest)
    received = len(next(chunks))
    own_registry.stop()

    with pytest.raises(ModelOpsError) as failed:
        for chunk in chunks:
            received += len(chunk)

    assert received < len(data)
    assert failed.value.info.error_class is ErrorClass.REGISTRY_UNREACHABLE
    message = str(failed.value)
    assert f"cannot reach registry {own_registry.host}" in message
    assert f"port {own_registry.port}" in message
    assert "after 4 attempts" in message


def test_pull_resumes_where_it_stopped_when_the_registry_comes_back(
    own_registry: RunningRegistry, big_blob: tuple[RegistryClient, str, bytes]
) -> None:
    client, digest, data = big_blob
    chunks = client.blob_chunks("faults", digest)
    first = next(chunks)
    own_registry.stop()
    restart = threading.Timer(0.3, own_registry.start)
    restart.start()
    try:
        rest = b"".join(chunks)
    finally:
        restart.join()
    assert first + rest == data
    ranged = [
        line
        for line in own_registry.log_path.read_text().splitlines()
        if f"/blobs/{digest}" in line and "GET" in line
    ]
    assert len(ranged) >= 2  # the first GET, then one resumed from where it broke off


def test_unreachable_registry_names_host_and_port() -> None:
    client = RegistryClient(RegistryHost.parse("127.0.0.1:9"), retries=1, backoff_s=0.01)
    with pytest.raises(ModelOpsError) as failed:
        client.check()
    assert failed.value.info.error_class is ErrorClass.REGISTRY_UNREACHABLE
    assert "cannot reach registry 127.0.0.1:9 (host 127.0.0.1, port 9) after 2 attempts" in str(
        failed.value
    )


class LoginPage(http.server.BaseHTTPRequestHandler):
    """What a corporate proxy answers: a 200 HTML sign-in page, whatever was asked."""

    def do_GET(self) -> None:
        body = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def login_page() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LoginPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_html_page_instead_of_json_is_named_not_a_parse_error(
    login_page: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = RegistryClient(RegistryHost.parse(login_page))
    with pytest.raises(ModelOpsError) as tags_failed:
        client.tags("model")
    with pytest.raises(ModelOpsError) as manifest_failed:
        client.get_manifest("model", "sha256:" + "a" * 64)

    for failed in (tags_failed, manifest_failed):
        message = str(failed.value)
        assert f"registry {login_page} sent an HTML page (HTTP 200, text/html" in message
        assert "where JSON was expected" in message
        assert "Expecting value" not in message


def test_workers_and_clients_read_the_registry_setting_host_only(
    monkeypatch: pytest.MonkeyPatch, registry: RunningRegistry
) -> None:
    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", f"{registry.host}/team/models")
    with pytest.raises(ModelOpsError) as failed:
        open_store(Settings.from_env())
    assert "includes a repository path ('team/models')" in str(failed.value)
    assert f"MODELOPS_BUNDLE_REGISTRY={registry.host}" in str(failed.value)

    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", registry.host)
    store = open_store(Settings.from_env())
    assert store.client.host.address == registry.host
