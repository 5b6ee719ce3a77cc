"""Azure Container Registry's two token logins, against a real `docker-registry` and its token
server (tests/registry_servers.py), which takes them as ACR does:

* `az acr login` stores an identity token (an OAuth2 refresh token) in Docker's config.json,
  beside `auth` = base64 of the all-zero user and an empty password; Docker trades it at the
  token realm by the refresh-token grant (a POST form), and so do we;
* `az acr login --expose-token` prints a token to log in with as the password of the all-zero
  user: a password like any other, sent to the realm with basic auth.

A token refused (expired, say) is one `registry_auth` line naming the `az acr login` that
renews it; no token is ever in an error, a log, a repr or a pickle.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import secrets
import subprocess
import sys
import traceback
from pathlib import Path

import httpx
import pytest
from tests.conftest import SMOKE_BUNDLE
from tests.registry.hostile import HostileServer, forward
from tests.registry_servers import TOKEN_SERVICE, RunningRegistry

from modelops import api
from modelops.api import Registry
from modelops.bundle.registry import RegistryHost, resolve_credentials
from modelops.bundle.registry.auth import _acr_login
from modelops.bundle.registry.credentials import TOKEN_USERNAME, docker_config_path
from modelops.bundle.store_in_use import registry_client
from modelops.contracts import ErrorClass, ModelOpsError

MOPS = [sys.executable, "-m", "modelops.cli"]


def identity_token(registry: RunningRegistry) -> str:
    assert registry.refresh_token is not None
    return registry.refresh_token


def az_acr_login(host: str, token: str) -> Path:
    """Write Docker's config.json as `az acr login` leaves it."""
    zero_user = base64.b64encode(f"{TOKEN_USERNAME}:".encode()).decode()
    return write_docker_config({"auths": {host: {"auth": zero_user, "identitytoken": token}}})


def write_docker_config(config: dict) -> Path:
    path = docker_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def everything_said(exc: BaseException) -> str:
    text = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, ModelOpsError):
        text += [repr(exc.info), exc.info.message, exc.info.traceback]
    return "\n".join(text)


def tree_files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MODELOPS_HOME: pulls must go to the registry, not to a warm cache."""
    home = tmp_path / "modelops-home"
    monkeypatch.setenv("MODELOPS_HOME", str(home))
    return home


def push_and_pull(registry: Registry, dest: Path) -> None:
    """Push the smoke bundle under a new tag, pull it by that tag, and compare the files."""
    tag = f"t-{secrets.token_hex(4)}"
    report = api.push(SMOKE_BUNDLE, registry=registry, tag=tag)
    ref, target = api.pull(f"smoke-bundle:{tag}", dest=dest, registry=registry)
    assert ref == report.ref
    assert tree_files(target) == tree_files(SMOKE_BUNDLE)


# --- the token server takes ACR's token logins, and refuses what ACR refuses ------------------


def test_the_token_server_takes_acrs_token_logins_and_refuses_others(
    token_registry: RunningRegistry,
) -> None:
    """So that the tests below mean something: the fixture refuses as a real server would."""
    realm, token = token_registry.token_realm or "", identity_token(token_registry)
    scope = "repository:smoke-bundle:pull"
    grant = {"client_id": "test", "service": TOKEN_SERVICE, "scope": scope}

    def post(form: dict[str, str]) -> httpx.Response:
        return httpx.post(realm, data=form, trust_env=False)

    def get(user: str, password: str) -> httpx.Response:
        params = {"service": TOKEN_SERVICE, "scope": scope}
        return httpx.get(realm, params=params, auth=(user, password), trust_env=False)

    answer = post({**grant, "grant_type": "refresh_token", "refresh_token": token})
    assert answer.status_code == 200
    assert set(answer.json()) == {"access_token", "expires_in", "issued_at"}
    refusals = {
        "invalid_grant": {**grant, "grant_type": "refresh_token", "refresh_token": "wrong"},
        "invalid_request": {"grant_type": "refresh_token", "refresh_token": token},
        "unsupported_grant_type": {**grant, "grant_type": "password", "password": token},
    }
    for error, form in refusals.items():
        refused = post(form)
        assert (refused.status_code, refused.json()) == (400, {"error": error})

    assert get(TOKEN_USERNAME, token).status_code == 200
    assert get(TOKEN_USERNAME, "wrong").status_code == 401
    assert get("someone", token).status_code == 401


# --- az acr login: an identity token in Docker's config.json ---------------------------------


@pytest.mark.parametrize("entry", ["as az acr login writes it", "identitytoken alone"])
def test_an_identity_token_in_docker_config_pushes_and_pulls(
    token_registry: RunningRegistry,
    fresh_home: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    entry: str,
) -> None:
    host, token = token_registry.host, identity_token(token_registry)
    if entry == "identitytoken alone":
        write_docker_config({"auths": {host: {"identitytoken": token}}})
    else:
        az_acr_login(host, token)
    found = resolve_credentials(RegistryHost.parse(host))
    assert found is not None and found.identity_token == token
    refresh_grants = token_registry.grants("refresh_token")
    logins = token_registry.grants("password") + token_registry.grants("token as password")

    with caplog.at_level(logging.DEBUG):
        push_and_pull(Registry(host), tmp_path / "pulled")

    assert token_registry.grants("refresh_token") > refresh_grants  # traded by the POST grant
    assert token_registry.grants("password") + token_registry.grants("token as password") == logins
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    for secret in [token, *token_registry.access_tokens]:
        assert secret not in caplog.text


def test_the_identity_token_goes_to_the_token_service_only(
    token_registry: RunningRegistry, fresh_home: Path, tmp_path: Path
) -> None:
    """Through a recording proxy in front of the registry: the access tokens reach it, the
    identity token never does (distribution's spec: only the authorization server gets it)."""
    token = identity_token(token_registry)
    with HostileServer("127.0.0.1", forward(token_registry.host)) as registry:
        az_acr_login(registry.host, token)
        push_and_pull(Registry(registry.host), tmp_path / "pulled")
        seen = registry.requests
    assert any((s.header("Authorization") or "").startswith("Bearer ") for s in seen)
    assert not any(token.encode() in s.raw for s in seen)


def test_a_refused_identity_token_is_one_auth_line_naming_az_acr_login(
    token_registry: RunningRegistry,
    fresh_home: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = token_registry.host
    expired = f"expired-{secrets.token_urlsafe(24)}"
    path = az_acr_login(host, expired)
    with caplog.at_level(logging.DEBUG):
        for attempt in (
            lambda: api.push(SMOKE_BUNDLE, registry=host),
            lambda: api.pull("smoke-bundle:latest", dest=tmp_path / "out", registry=host),
        ):
            with pytest.raises(ModelOpsError) as caught:
                attempt()
            info = caught.value.info
            assert info.error_class is ErrorClass.REGISTRY_AUTH
            assert info.message == (
                f"authentication failed for {host} (HTTP 400 from its token service); "
                f"the identity token from {path} (auths[{host!r}]) was refused (it may have "
                "expired); run `az acr login --name <registry name>` again"
            )
            assert expired not in everything_said(caught.value)
    assert expired not in caplog.text
    assert not (tmp_path / "out").exists()


def test_mops_says_a_refused_identity_token_in_one_line(token_registry: RunningRegistry) -> None:
    expired = f"expired-{secrets.token_urlsafe(24)}"
    az_acr_login(token_registry.host, expired)
    done = subprocess.run(
        [*MOPS, "bundle", "push", str(SMOKE_BUNDLE), "--registry", token_registry.host],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),  # DOCKER_CONFIG is this test's own
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"registry_auth: authentication failed for {token_registry.host}")
    assert "az acr login --name" in " ".join(done.stderr.split())  # rich may wrap in a pipe
    assert expired not in done.stderr


# --- az acr login --expose-token: a token as the all-zero user's password --------------------


@pytest.mark.parametrize("given", ["explicitly", "by docker login"])
def test_an_access_token_as_the_all_zero_users_password_pushes_and_pulls(
    token_registry: RunningRegistry,
    fresh_home: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    given: str,
) -> None:
    host, token = token_registry.host, identity_token(token_registry)
    if given == "explicitly":
        registry = Registry(host, TOKEN_USERNAME, token)
    else:
        auth = base64.b64encode(f"{TOKEN_USERNAME}:{token}".encode()).decode()
        write_docker_config({"auths": {host: {"auth": auth}}})
        registry = Registry(host)
    before = token_registry.grants("token as password")
    refresh_grants = token_registry.grants("refresh_token")

    with caplog.at_level(logging.DEBUG):
        push_and_pull(registry, tmp_path / "pulled")

    assert token_registry.grants("token as password") > before  # basic auth to the realm
    assert token_registry.grants("refresh_token") == refresh_grants
    for secret in [token, *token_registry.access_tokens]:
        assert secret not in caplog.text


def test_a_refused_access_token_is_one_auth_line_naming_expose_token(
    token_registry: RunningRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    host = token_registry.host
    expired = f"expired-{secrets.token_urlsafe(24)}"
    with caplog.at_level(logging.DEBUG), pytest.raises(ModelOpsError) as caught:
        api.push(SMOKE_BUNDLE, registry=Registry(host, TOKEN_USERNAME, expired))
    info = caught.value.info
    assert info.error_class is ErrorClass.REGISTRY_AUTH
    assert info.message == (
        f"authentication failed for {host} (HTTP 401 from its token service); the token given "
        f"as the password of user {TOKEN_USERNAME} (command line) was refused (it may have "
        "expired); get a new one with `az acr login --name <registry name> --expose-token`"
    )
    assert expired not in everything_said(caught.value)
    assert expired not in caplog.text


@pytest.mark.parametrize(
    ("registry", "command"),
    [
        ("myacr.azurecr.io", "`az acr login --name myacr`"),
        ("https://MyAcr.azurecr.io/", "`az acr login --name myacr`"),
        ("contoso.azurecr.cn", "`az acr login --name contoso`"),
        ("127.0.0.1:5000", "`az acr login --name <registry name>`"),
        ("myacr.azurecr.io.example.com", "`az acr login --name <registry name>`"),
    ],
)
def test_the_fix_names_the_azure_registry(registry: str, command: str) -> None:
    assert _acr_login(RegistryHost.parse(registry)) == command


# --- secrets -----------------------------------------------------------------------------------


def test_no_identity_or_access_token_in_reprs_or_pickles(token_registry: RunningRegistry) -> None:
    """The identity token rides in Credentials, as a password does: never shown, never
    pickled into a task graph (workers resolve their own)."""
    token = identity_token(token_registry)
    az_acr_login(token_registry.host, token)
    with registry_client(token_registry.host) as client:
        client.check()
        client.repositories()
        auth = client._http.auth  # the RegistryAuth in use
        access = [t.value for t in auth._tokens.values()]
        assert access and auth.credentials is not None
        objects = [client, auth, auth.credentials, *auth._tokens.values()]
        said = "\n".join(repr(o) + str(o) for o in objects)
        for holder in (auth.credentials, client):
            with pytest.raises(TypeError) as caught:
                pickle.dumps(holder)
            assert "never leave" in str(caught.value)
            said += everything_said(caught.value)
    for secret in [token, *access]:
        assert secret not in said
