"""Every answer a registry sends is read no further than it may be: a manifest up to 4 MiB
(the distribution spec's limit), listing pages as much, an error answer only as far as its
message needs. A hostile registry on 127.0.0.2 sends more."""

from __future__ import annotations

import pytest
from tests.registry.hostile import HostileServer, Reply, Seen, json_reply

from modelops.bundle.config import MAX_MANIFEST_BYTES
from modelops.bundle.registry import RegistryClient, RegistryHost
from modelops.contracts import ErrorClass, ModelOpsError

HUGE = MAX_MANIFEST_BYTES + 1024


def huge_answers(server: HostileServer, seen: Seen) -> Reply:
    if seen.path == "/v2/":
        return json_reply(200, {})
    if "/manifests/" in seen.path:
        body = b"{" + b" " * HUGE + b"}"
        return Reply(200, [("Content-Type", "application/vnd.oci.image.manifest.v1+json")], body)
    if seen.path == "/v2/_catalog":
        return json_reply(200, {"repositories": ["x" * HUGE]})
    body = b'{"errors": [{"code": "UNKNOWN", "message": "' + b"x" * HUGE + b'"}]}'
    return Reply(500, [("Content-Type", "application/json")], body)


@pytest.fixture
def client() -> RegistryClient:
    with HostileServer(answer=huge_answers) as server:
        registry = RegistryClient(RegistryHost.parse(server.host), retries=0, backoff_s=0.01)
        with registry:
            yield registry


def test_a_manifest_larger_than_the_spec_allows_is_refused(client: RegistryClient) -> None:
    with pytest.raises(ModelOpsError) as refused:
        client.get_manifest("repo", "latest")
    assert refused.value.info.error_class is ErrorClass.BAD_BUNDLE
    assert f"larger than the {MAX_MANIFEST_BYTES} bytes" in refused.value.info.message


def test_a_listing_page_larger_than_allowed_is_refused(client: RegistryClient) -> None:
    with pytest.raises(ModelOpsError) as refused:
        client.repositories()
    assert "the catalog of" in refused.value.info.message
    assert "larger than" in refused.value.info.message


def test_a_huge_error_answer_is_read_only_for_its_message(client: RegistryClient) -> None:
    with pytest.raises(ModelOpsError) as failed:
        client.tags("repo")
    message = failed.value.info.message
    assert failed.value.info.error_class is ErrorClass.REGISTRY_UNREACHABLE
    assert "answered HTTP 500" in message
    assert len(message) < 1000  # cut short, not 4 MiB of someone else's text
