"""The real-registry helpers work: push/pull over HTTP, skopeo, restarts, basic and token auth.

Everything here talks to a real `docker-registry` process (and, for token auth, the helper's
token server) with plain httpx, so later registry tests can trust the fixture they stand on.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from tests import registry_servers
from tests.registry_servers import (
    TOKEN_SERVICE,
    RegistryStartError,
    RunningRegistry,
    run_registry,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def client(headers: dict[str, str] | None = None) -> httpx.Client:
    # trust_env=False: a developer's HTTP(S)_PROXY must not swallow 127.0.0.1 traffic.
    return httpx.Client(trust_env=False, timeout=10, headers=headers)


def push_blob(http: httpx.Client, registry: RunningRegistry, name: str, data: bytes) -> str:
    """Monolithic upload: POST a session, then PUT the bytes with ?digest=."""
    started = http.post(f"{registry.url}/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.request.url.join(started.headers["Location"])
    digest = sha256(data)
    done = http.put(
        location.copy_merge_params({"digest": digest}),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest
    return digest


def get_blob(http: httpx.Client, registry: RunningRegistry, name: str, digest: str) -> bytes:
    response = http.get(f"{registry.url}/v2/{name}/blobs/{digest}", follow_redirects=True)
    assert response.status_code == 200, response.text
    return response.content


def push_image(http: httpx.Client, registry: RunningRegistry, name: str, tag: str) -> bytes:
    """Config + one layer + an OCI image manifest under `tag`; returns the manifest bytes."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = b"not really a tar, distribution does not look inside layers"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": push_blob(http, registry, name, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": OCI_LAYER,
                "digest": push_blob(http, registry, name, layer),
                "size": len(layer),
            }
        ],
    }
    body = json.dumps(manifest, indent=2).encode()
    put = http.put(
        f"{registry.url}/v2/{name}/manifests/{tag}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == sha256(body)
    return body


def skopeo_raw(registry: RunningRegistry, ref: str, tmp_path: Path, creds: str | None = None):
    args = ["skopeo", "inspect", "--raw", "--tls-verify=false"]
    # An authfile of our own so a developer's ~/.docker or auth.json cannot interfere.
    args += ["--authfile", str(tmp_path / "skopeo-auth.json")]
    if creds:
        args += ["--creds", creds]
    return subprocess.run(
        [*args, f"docker://{registry.host}/{ref}"], capture_output=True, timeout=60, check=False
    )


def bearer_challenge(response: httpx.Response) -> dict[str, str]:
    """Parse `Bearer realm="...",service="...",...` (values here never contain commas)."""
    scheme, _, params = response.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer"
    pairs = (item.split("=", 1) for item in params.split('",'))
    return {key.strip(): value.strip('"') for key, value in pairs}


def fetch_token(
    registry: RunningRegistry, scope: str, auth: tuple[str, str] | None
) -> httpx.Response:
    with client() as http:
        return http.get(
            registry.token_realm or "",
            params={"service": TOKEN_SERVICE, "scope": scope},
            auth=auth,
        )


def test_anonymous_registry_round_trips_an_oci_image(tmp_path: Path) -> None:
    with run_registry(tmp_path) as registry, client() as http:
        assert registry.auth == "none" and registry.username is None
        assert registry.host.startswith("127.0.0.1:")
        assert registry.storage.is_relative_to(tmp_path)
        assert registry.tokens_issued == 0

        body = push_image(http, registry, "team/model", "v1")
        by_digest = http.get(
            f"{registry.url}/v2/team/model/manifests/{sha256(body)}",
            headers={"Accept": OCI_MANIFEST},
        )
        assert by_digest.status_code == 200
        assert by_digest.content == body
        assert by_digest.headers["Content-Type"] == OCI_MANIFEST

        inspected = skopeo_raw(registry, "team/model:v1", tmp_path)
        assert inspected.returncode == 0, inspected.stderr.decode()
        assert inspected.stdout.rstrip(b"\n") == body

        config_digest = json.loads(body)["config"]["digest"]
        assert registry.blob_path(config_digest).read_bytes() == get_blob(
            http, registry, "team/model", config_digest
        )
        assert registry.blob_path(config_digest).is_relative_to(registry.storage)


def test_stop_then_start_keeps_port_and_storage(tmp_path: Path) -> None:
    with run_registry(tmp_path) as registry:
        with client() as http:
            digest = push_blob(http, registry, "team/model", b"survives restarts")
        host, pid = registry.host, registry.pid
        assert pid is not None

        registry.stop()
        registry.stop()  # idempotent
        assert registry.pid is None
        with client() as http, pytest.raises(httpx.ConnectError):
            http.get(f"{registry.url}/v2/")

        registry.start()
        assert registry.host == host and registry.pid not in (None, pid)
        with client() as http:
            assert http.get(f"{registry.url}/v2/").status_code == 200
            assert get_blob(http, registry, "team/model", digest) == b"survives restarts"


def test_start_reports_the_log_when_the_registry_dies(tmp_path: Path) -> None:
    with run_registry(tmp_path) as registry:
        registry.stop()
        with socket.socket() as squatter:
            # SO_REUSEADDR, like Go's listener: our own closed connections sit in TIME_WAIT.
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", registry.port))
            squatter.listen()
            with pytest.raises(RegistryStartError, match="address already in use"):
                registry.start()
            assert registry.pid is None
        registry.start()
        assert registry.pid is not None


def test_run_registry_moves_on_when_its_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe-then-bind port race is real; losing it must cost a retry, not the test."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real_free_port = registry_servers._free_port
        offers = iter([taken])
        monkeypatch.setattr(registry_servers, "_free_port", lambda: next(offers, real_free_port()))
        with run_registry(tmp_path) as registry, client() as http:
            assert registry.port != taken
            assert http.get(f"{registry.url}/v2/").status_code == 200
            assert "address already in use" in registry.log_path.read_text()


def test_everything_stops_when_the_test_body_fails(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), run_registry(tmp_path, auth="token") as registry:
        pid, realm = registry.pid, registry.token_realm
        assert pid is not None and realm is not None
        assert fetch_token(registry, "repository:a:pull", None).status_code == 401
        _ = 1 / 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with client() as http:
        for url in (f"{registry.url}/v2/", realm):
            with pytest.raises(httpx.ConnectError):
                http.get(url)


def test_basic_auth_needs_the_right_password(tmp_path: Path) -> None:
    with run_registry(tmp_path, auth="basic") as registry, client() as http:
        assert registry.username and registry.password
        htpasswd = (registry.storage.parent / "htpasswd").read_text()
        assert htpasswd.startswith(f"{registry.username}:$2")
        assert registry.password not in htpasswd

        anonymous = http.get(f"{registry.url}/v2/")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")

        right = (registry.username, registry.password)
        assert http.get(f"{registry.url}/v2/", auth=right).status_code == 200
        wrong = (registry.username, registry.password + "x")
        assert http.get(f"{registry.url}/v2/", auth=wrong).status_code == 401

    with run_registry(tmp_path, auth="basic") as registry:
        assert registry.username and registry.password
        with client() as http:
            http.auth = (registry.username, registry.password)
            push_image(http, registry, "team/model", "v1")
        creds = f"{registry.username}:{registry.password}"
        assert skopeo_raw(registry, "team/model:v1", tmp_path, creds).returncode == 0
        assert skopeo_raw(registry, "team/model:v1", tmp_path).returncode != 0


def test_token_auth_dance_grants_push_and_pull(tmp_path: Path) -> None:
    with run_registry(tmp_path, auth="token") as registry, client() as http:
        assert registry.username and registry.password
        me = (registry.username, registry.password)

        base = http.get(f"{registry.url}/v2/")
        assert base.status_code == 401
        challenge = bearer_challenge(base)
        assert challenge == {"realm": registry.token_realm, "service": TOKEN_SERVICE}

        denied = http.post(f"{registry.url}/v2/team/model/blobs/uploads/")
        assert denied.status_code == 401
        scope = bearer_challenge(denied)["scope"]
        kind, name, actions = scope.split(":")
        assert (kind, name, set(actions.split(","))) == (
            "repository",
            "team/model",
            {"pull", "push"},
        )

        assert fetch_token(registry, scope, None).status_code == 401
        assert fetch_token(registry, scope, (registry.username, "wrong")).status_code == 401
        assert fetch_token(registry, scope, ("someone-else", registry.password)).status_code == 401
        assert registry.tokens_issued == 0

        granted = fetch_token(registry, scope, me)
        assert granted.status_code == 200
        token = granted.json()
        assert token["token"] == token["access_token"]
        assert token["expires_in"] == 300
        assert registry.tokens_issued == 1

        http.headers["Authorization"] = f"Bearer {token['token']}"
        digest = push_blob(http, registry, "team/model", b"bundle bytes")
        assert get_blob(http, registry, "team/model", digest) == b"bundle bytes"
        # The token's access claim is enforced: it says nothing about other repositories.
        assert http.post(f"{registry.url}/v2/team/other/blobs/uploads/").status_code == 401
        assert http.get(f"{registry.url}/v2/_catalog").status_code == 401

        catalog_token = fetch_token(registry, "registry:catalog:*", me).json()["token"]
        catalog = http.get(
            f"{registry.url}/v2/_catalog", headers={"Authorization": f"Bearer {catalog_token}"}
        )
        assert catalog.status_code == 200
        assert catalog.json() == {"repositories": ["team/model"]}

        push_image(http, registry, "team/model", "v1")
        creds = f"{registry.username}:{registry.password}"
        inspected = skopeo_raw(registry, "team/model:v1", tmp_path, creds)
        assert inspected.returncode == 0, inspected.stderr.decode()

        registry.stop()
        with pytest.raises(httpx.ConnectError):
            http.get(registry.token_realm or "")
        registry.start()
        # Same realm, same signing key: the old token is still good after a restart.
        assert http.get(f"{registry.url}/v2/team/model/blobs/{digest}").status_code == 200
        assert fetch_token(registry, scope, me).status_code == 200


def test_expired_tokens_are_rejected(tmp_path: Path) -> None:
    with run_registry(tmp_path, auth="token", token_ttl_s=2) as registry, client() as http:
        assert registry.username and registry.password
        me = (registry.username, registry.password)
        scope = "repository:team/model:pull,push"
        token = fetch_token(registry, scope, me).json()
        assert token["expires_in"] == 2
        bearer = {"Authorization": f"Bearer {token['token']}"}
        with client(bearer) as authed:
            digest = push_blob(authed, registry, "team/model", b"short-lived")
        blob_url = f"{registry.url}/v2/team/model/blobs/{digest}"
        assert http.head(blob_url, headers=bearer).status_code == 200

        time.sleep(3)
        expired = http.head(blob_url, headers=bearer)
        assert expired.status_code == 401
        assert bearer_challenge(expired)["error"] == "invalid_token"

        fresh = fetch_token(registry, scope, me).json()["token"]
        assert http.head(blob_url, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
        assert registry.tokens_issued == 2
