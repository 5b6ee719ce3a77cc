"""Credentials go only to the registry the user named, and to the token realm it announced.

The rule (docs/security.md): the username, the password and every token go only to the
registry's own origin (scheme, host, port) and to a token realm that origin announced in a
401 of its own; a realm must be https unless the registry itself is plain http (loopback or
--insecure). A request that leaves the origin (a blob download redirected to a CDN) is
followed without credentials, and a 401 there is an error, not a login prompt. A catalog
page's `Link: next` or an upload's `Location` on another origin is refused.

Every test points something at a hostile server on 127.0.0.2 (another host, to the client)
that records each request it gets (tests/registry/hostile.py), and then asserts it saw no
Authorization header and no password. Where a real registry can show the behaviour, the
hostile twist is a pass-through proxy in front of a real `docker-registry` that rewrites one
header; normal pushes, pulls and listings through the same proxy still work.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import SMOKE_BUNDLE
from tests.registry.hostile import (
    HOSTILE_TOKEN,
    OTHER_HOST,
    Answer,
    HostileServer,
    Reply,
    Seen,
    Tamper,
    basic_header,
    forward,
    json_reply,
    leaks,
    self_signed,
)
from tests.registry_servers import RunningRegistry

from modelops import api
from modelops.api import Registry
from modelops.bundle.registry import Credentials, RegistryClient, RegistryHost
from modelops.contracts import ErrorClass, ModelOpsError

MOPS = [sys.executable, "-m", "modelops.cli"]


def creds(registry: RunningRegistry) -> dict[str, str]:
    assert registry.username is not None and registry.password is not None
    return {"username": registry.username, "password": registry.password}


def secrets_of(registry: RunningRegistry) -> list[str]:
    """What must never reach another host: the password, and the basic-auth header of it."""
    user, password = registry.username, registry.password
    assert user is not None and password is not None
    return [password, basic_header(user, password).removeprefix("Basic ")]


def everything_said(exc: ModelOpsError) -> str:
    return "\n".join(
        [str(exc), repr(exc), exc.info.message, "".join(traceback.format_exception(exc))]
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(params=["basic", "token"])
def real_registry(
    request: pytest.FixtureRequest, basic_registry: RunningRegistry, token_registry: RunningRegistry
) -> RunningRegistry:
    """The htpasswd registry and the bearer-token one: every rule holds for both."""
    return basic_registry if request.param == "basic" else token_registry


@pytest.fixture
def other_host() -> Iterator[HostileServer]:
    """A host that is not the registry, answering everything with a login prompt."""
    with HostileServer(OTHER_HOST) as server:
        yield server


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MODELOPS_HOME: pulls must go to the registry, not to a warm cache."""
    home = tmp_path / "modelops-home"
    monkeypatch.setenv("MODELOPS_HOME", str(home))
    return home


def proxy(
    registry: RunningRegistry,
    answer: Callable[[HostileServer, Seen], Reply | None] | None = None,
    tamper: Tamper | None = None,
) -> HostileServer:
    """A pass-through proxy on 127.0.0.1 to a real registry: the registry the user names."""
    forwarded = forward(registry.host, tamper)
    if answer is None:
        return HostileServer("127.0.0.1", forwarded)

    def first_answer_then_forward(server: HostileServer, seen: Seen) -> Reply:
        return answer(server, seen) or forwarded(server, seen)

    return HostileServer("127.0.0.1", first_answer_then_forward)


def one_line(exc: ModelOpsError) -> str:
    message = exc.info.message
    assert "\n" not in message, message
    return message


# --- Link: next ----------------------------------------------------------------------------


@pytest.mark.parametrize("listing", ["catalog", "tags"])
def test_a_next_page_on_another_host_is_refused(
    real_registry: RunningRegistry, other_host: HostileServer, listing: str
) -> None:
    """Before: the next page went to 127.0.0.2 with the Authorization header, and its 401
    was answered by sending the password to the realm it named."""
    repository = unique("paged")
    api.push(
        SMOKE_BUNDLE,
        registry=Registry(real_registry.host, **creds(real_registry)),
        repository=repository,
        tag="v1",  # an untagged repository has no tag list to page through
    )
    endpoint = "/v2/_catalog" if listing == "catalog" else f"/v2/{repository}/tags/list"

    def point_next_page_elsewhere(seen: Seen, reply: Reply) -> Reply:
        if seen.path == endpoint and reply.status == 200:
            reply.set_header("Link", f'<{other_host.url}{endpoint}?last=zzz&n=100>; rel="next"')
        return reply

    with proxy(real_registry, tamper=point_next_page_elsewhere) as registry:
        with pytest.raises(ModelOpsError) as caught:
            api.list_bundles(Registry(registry.host, **creds(real_registry)))
        listed_first_page = any(seen.path == endpoint for seen in registry.requests)

    assert listed_first_page
    assert leaks(other_host.requests, secrets_of(real_registry)) == []
    assert other_host.requests == []  # refused, not followed
    info = caught.value.info
    assert info.error_class is ErrorClass.BAD_INPUT
    message = one_line(caught.value)
    assert f"registry {registry.host} pointed the next page of" in message
    assert f"at another origin, http://{OTHER_HOST}:{other_host.port}" in message
    assert f"its own origin, http://{registry.host}" in message
    assert not any(s in everything_said(caught.value) for s in secrets_of(real_registry))


def test_mops_bundle_list_refuses_a_next_page_on_another_host(
    basic_registry: RunningRegistry, other_host: HostileServer
) -> None:
    """What the user sees: one line on stderr, exit 1, and nothing sent to the other host."""
    api.push(SMOKE_BUNDLE, registry=Registry(basic_registry.host, **creds(basic_registry)))

    def point_next_page_elsewhere(seen: Seen, reply: Reply) -> Reply:
        if seen.path == "/v2/_catalog" and reply.status == 200:
            reply.set_header("Link", f'<{other_host.url}/v2/_catalog?last=zzz>; rel="next"')
        return reply

    user, password = creds(basic_registry).values()
    with proxy(basic_registry, tamper=point_next_page_elsewhere) as registry:
        done = subprocess.run(
            [*MOPS, "bundle", "list"],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **os.environ,
                "MODELOPS_BUNDLE_REGISTRY": registry.host,
                "MODELOPS_REGISTRY_USERNAME": user,
                "MODELOPS_REGISTRY_PASSWORD": password,
            },
        )

    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"bad_input: registry {registry.host} pointed the next page")
    assert f"http://{OTHER_HOST}:{other_host.port}" in lines[0]
    assert password not in done.stderr
    assert other_host.requests == []


def test_next_pages_on_the_registry_itself_are_followed_with_credentials(
    real_registry: RunningRegistry,
) -> None:
    """Pagination still works: an absolute next link on the registry's own origin (first
    page) and distribution's own relative ones (after it), each sent with credentials."""
    for name in ("pages-a", "pages-b", "pages-c"):
        api.push(
            SMOKE_BUNDLE,
            registry=Registry(real_registry.host, **creds(real_registry)),
            repository=name,
        )
    with RegistryClient(
        RegistryHost.parse(real_registry.host), Credentials(**creds(real_registry))
    ) as direct:
        everything = direct.repositories()
    assert {"pages-a", "pages-b", "pages-c"} <= set(everything)

    def one_per_page(server: HostileServer, seen: Seen) -> Reply | None:
        if seen.path == "/v2/_catalog" and "last=" not in seen.target:
            first = forward(real_registry.host)(server, seen)
            if first.status != 200:
                return first  # the 401 that starts the login
            names = json.loads(first.body)["repositories"]
            first.body = json.dumps({"repositories": names[:1]}).encode()
            first.set_header("Link", f'<{server.url}/v2/_catalog?n=1&last={names[0]}>; rel="next"')
            return first
        return None

    with proxy(real_registry, answer=one_per_page) as registry:
        paged = api.list_bundles(Registry(registry.host, **creds(real_registry)))
        pages = [s for s in registry.requests if s.path == "/v2/_catalog" and "last=" in s.target]

    assert [name for name, _ in paged] == sorted(everything)
    assert len(pages) >= len(everything) - 1  # one repository per page after the first
    assert all(seen.header("Authorization") for seen in pages)


# --- blobs redirected to another host ------------------------------------------------------


def redirect_blobs_to(
    target: HostileServer, signature: str
) -> Callable[[HostileServer, Seen], Reply | None]:
    def answer(server: HostileServer, seen: Seen) -> Reply | None:
        if seen.method == "GET" and "/blobs/sha256:" in seen.path:
            digest = seen.path.rpartition("/")[2]
            location = f"{target.url}/cdn/{digest}?signature={signature}"
            return Reply(307, [("Location", location)])
        return None

    return answer


def test_a_blob_host_that_asks_for_a_login_gets_no_credentials(
    real_registry: RunningRegistry, other_host: HostileServer, fresh_home: Path, tmp_path: Path
) -> None:
    """Before: the CDN's `401 Bearer realm=http://127.0.0.2/token` got the password (basic
    auth to its realm), and the token it handed out was sent to the registry."""
    report = api.push(SMOKE_BUNDLE, registry=Registry(real_registry.host, **creds(real_registry)))
    signature = secrets.token_hex(16)

    with proxy(real_registry, answer=redirect_blobs_to(other_host, signature)) as registry:
        with pytest.raises(ModelOpsError) as caught:
            api.pull(
                str(report.ref),
                dest=tmp_path / "out",
                registry=Registry(registry.host, **creds(real_registry)),
            )
        sent_to_registry = registry.requests

    cdn = other_host.requests
    assert cdn and all(seen.path.startswith("/cdn/sha256:") for seen in cdn)  # no /token
    assert leaks(cdn, [*secrets_of(real_registry), HOSTILE_TOKEN]) == []
    assert not any(HOSTILE_TOKEN.encode() in seen.raw for seen in sent_to_registry)
    info = caught.value.info
    assert info.error_class is ErrorClass.REGISTRY_AUTH
    message = one_line(caught.value)
    assert message.startswith(f"http://{OTHER_HOST}:{other_host.port}, where registry ")
    assert "refused it (HTTP 401)" in message
    assert "mops bundle login" not in message  # not a login prompt
    assert signature not in message  # a CDN URL's signature is not repeated either
    assert not any(s in everything_said(caught.value) for s in secrets_of(real_registry))
    assert not (tmp_path / "out").exists()


def test_a_blob_redirected_to_a_cdn_is_fetched_without_credentials(
    real_registry: RunningRegistry, fresh_home: Path, tmp_path: Path
) -> None:
    """Redirects off the origin are followed (registries send downloads to a CDN), bare."""
    report = api.push(SMOKE_BUNDLE, registry=Registry(real_registry.host, **creds(real_registry)))

    def serve_blob(server: HostileServer, seen: Seen) -> Reply:
        digest = seen.path.removeprefix("/cdn/")
        return Reply(
            200, [("Content-Type", "application/octet-stream")], _blob(real_registry, digest)
        )

    with (
        HostileServer(OTHER_HOST, serve_blob) as cdn,
        proxy(real_registry, answer=redirect_blobs_to(cdn, "sig")) as registry,
    ):
        ref, target = api.pull(
            str(report.ref),
            dest=tmp_path / "out",
            registry=Registry(registry.host, **creds(real_registry)),
        )

    assert ref == report.ref
    for original in SMOKE_BUNDLE.iterdir():
        if original.is_file():
            assert (target / original.name).read_bytes() == original.read_bytes()
    assert len(cdn.requests) >= 2  # the config blob and the layers all came from the CDN
    assert leaks(cdn.requests, secrets_of(real_registry)) == []


def _blob(registry: RunningRegistry, digest: str) -> bytes:
    return registry.blob_path(digest).read_bytes()


# --- upload locations on another host ------------------------------------------------------


def test_an_upload_location_on_another_host_is_refused(
    real_registry: RunningRegistry, other_host: HostileServer
) -> None:
    """Before: the PATCH with the bundle's bytes went to 127.0.0.2 carrying the push token
    (or the basic-auth password)."""

    def move_uploads_elsewhere(seen: Seen, reply: Reply) -> Reply:
        location = reply.header("Location")
        if seen.method == "POST" and reply.status == 202 and location:
            path = httpx.URL(location).raw_path.decode()
            reply.set_header("Location", f"{other_host.url}{path}")
        return reply

    repository = unique("moved-upload")  # blobs it does not hold yet: they must be uploaded
    with proxy(real_registry, tamper=move_uploads_elsewhere) as registry:
        with pytest.raises(ModelOpsError) as caught:
            api.push(
                SMOKE_BUNDLE,
                registry=Registry(registry.host, **creds(real_registry)),
                repository=repository,
            )
        uploads_started = [s for s in registry.requests if s.method == "POST"]

    assert uploads_started
    assert leaks(other_host.requests, secrets_of(real_registry)) == []
    assert other_host.requests == []  # refused, not followed
    assert caught.value.info.error_class is ErrorClass.BAD_INPUT
    message = one_line(caught.value)
    assert f"registry {registry.host} pointed the upload of blob sha256:" in message
    assert f"at another origin, http://{OTHER_HOST}:{other_host.port}" in message
    assert not any(s in everything_said(caught.value) for s in secrets_of(real_registry))


def test_pushes_and_pulls_through_the_proxy_work_unchanged(
    real_registry: RunningRegistry, fresh_home: Path, tmp_path: Path
) -> None:
    """The control: the same proxy without a twist changes nothing for a real registry."""
    with proxy(real_registry) as registry:
        tag = unique("t")
        report = api.push(
            SMOKE_BUNDLE,
            registry=Registry(registry.host, **creds(real_registry)),
            repository=unique("via-proxy"),
            tag=tag,
        )
        ref, target = api.pull(
            f"{report.ref.repository}:{tag}",
            dest=tmp_path / "out",
            registry=Registry(registry.host, **creds(real_registry)),
        )
        seen = registry.requests
    assert ref == report.ref
    assert (target / "wire.py").read_bytes() == (SMOKE_BUNDLE / "wire.py").read_bytes()
    assert any(s.method == "PATCH" and s.header("Authorization") for s in seen)


# --- token realms --------------------------------------------------------------------------


def fake_registry(user: str, password: str, realm: str) -> Answer:
    """A registry that wants a bearer token from `realm` (its own /token when that is where
    the realm points) and accepts the token it issued."""
    token = f"own-token-{secrets.token_hex(8)}"

    def answer(server: HostileServer, seen: Seen) -> Reply:
        if seen.path == "/token":
            if seen.header("Authorization") != basic_header(user, password):
                return json_reply(401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return json_reply(200, {"token": token, "expires_in": 300})
        if seen.header("Authorization") == f"Bearer {token}":
            return json_reply(200, {})
        challenge = f'Bearer realm="{realm or server.url + "/token"}",service="fake"'
        return json_reply(
            401, {"errors": [{"code": "UNAUTHORIZED"}]}, [("WWW-Authenticate", challenge)]
        )

    return answer


@pytest.fixture
def https_name(tmp_path: Path) -> tuple[str, str, Path]:
    """A name of this machine that is not `localhost` (so ModelOps reaches it over HTTPS,
    as it would a remote registry), the loopback address it resolves to, and a folder for a
    certificate."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    if (
        name == "localhost"
        or not address.startswith("127.")
        or RegistryHost.parse(name).is_loopback
    ):
        pytest.skip(f"this machine's name {name!r} is not a loopback name other than localhost")
    return name, address, tmp_path / "tls"


def https_fake_registry(
    https_name: tuple[str, str, Path],
    monkeypatch: pytest.MonkeyPatch,
    realm: str,
    user: str,
    password: str,
) -> HostileServer:
    name, address, folder = https_name
    context, ca_file = self_signed(folder, name, address)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # httpx trusts our certificate
    return HostileServer(address, fake_registry(user, password, realm), tls=context, name=name)


def test_an_https_registry_may_not_send_credentials_to_a_plain_http_realm(
    https_name: tuple[str, str, Path], monkeypatch: pytest.MonkeyPatch, other_host: HostileServer
) -> None:
    """Before: the password went over plain HTTP to whatever realm the registry named."""
    user, password = "someone", secrets.token_urlsafe(16)
    realm = f"{other_host.url}/token"
    with https_fake_registry(https_name, monkeypatch, realm, user, password) as registry:
        host = RegistryHost.parse(registry.host)
        assert host.scheme == "https"
        with (
            RegistryClient(host, Credentials(user, password)) as client,
            pytest.raises(ModelOpsError) as caught,
        ):
            client.check()
        asked = registry.requests

    assert leaks(other_host.requests, [password, basic_header(user, password)]) == []
    assert other_host.requests == []
    assert [seen.path for seen in asked] == ["/v2/"]
    assert caught.value.info.error_class is ErrorClass.REGISTRY_AUTH
    message = one_line(caught.value)
    assert f"registry {registry.host} named a token service over plain HTTP" in message
    assert f"(http://{OTHER_HOST}:{other_host.port})" in message
    assert password not in everything_said(caught.value)


def test_an_https_registry_logs_in_through_its_https_realm(
    https_name: tuple[str, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: an https realm of the registry's gets the credentials, and works."""
    user, password = "someone", secrets.token_urlsafe(16)
    with https_fake_registry(https_name, monkeypatch, "", user, password) as registry:
        with RegistryClient(
            RegistryHost.parse(registry.host), Credentials(user, password)
        ) as client:
            client.check()
        asked = registry.requests
    assert [seen.path for seen in asked] == ["/v2/", "/token", "/v2/"]
    assert asked[1].header("Authorization") == basic_header(user, password)
    assert (asked[2].header("Authorization") or "").startswith("Bearer own-token-")


@pytest.mark.parametrize(
    "realm", ["file:///etc/passwd", "ftp://127.0.0.2/token", "https:///token", "::"]
)
def test_a_realm_that_is_not_http_is_refused(realm: str) -> None:
    user, password = "someone", secrets.token_urlsafe(16)
    with HostileServer("127.0.0.1", fake_registry(user, password, realm)) as registry:
        with (
            RegistryClient(
                RegistryHost.parse(registry.host), Credentials(user, password)
            ) as client,
            pytest.raises(ModelOpsError) as caught,
        ):
            client.check()
        asked = registry.requests
    assert [seen.path for seen in asked] == ["/v2/"]
    assert caught.value.info.error_class is ErrorClass.REGISTRY_AUTH
    assert f"registry {registry.host} named a token service that is not an http(s) URL" in (
        one_line(caught.value)
    )


def test_a_plain_http_registry_may_announce_a_realm_on_another_host(
    other_host: HostileServer,
) -> None:
    """The rule's other half: a realm the registry's own 401 named gets the credentials
    (over plain HTTP too, since the registry itself is on loopback), and its token goes to
    the registry only."""
    user, password = "someone", secrets.token_urlsafe(16)
    issued = f"realm-token-{secrets.token_hex(8)}"

    def token_service(server: HostileServer, seen: Seen) -> Reply:
        if seen.header("Authorization") != basic_header(user, password):
            return json_reply(401, {})
        return json_reply(200, {"token": issued, "expires_in": 300})

    other_host.answer = token_service

    def registry_answer(server: HostileServer, seen: Seen) -> Reply:
        if seen.header("Authorization") == f"Bearer {issued}":
            return json_reply(200, {})
        challenge = f'Bearer realm="{other_host.url}/token",service="fake"'
        return json_reply(401, {}, [("WWW-Authenticate", challenge)])

    with (
        HostileServer("127.0.0.1", registry_answer) as registry,
        RegistryClient(RegistryHost.parse(registry.host), Credentials(user, password)) as client,
    ):
        client.check()
    assert [seen.path for seen in other_host.requests] == ["/token"]
    assert not any(issued.encode() in seen.raw for seen in other_host.requests)


# --- http to https on the same host --------------------------------------------------------


def test_an_upgrade_redirect_to_https_carries_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx keeps the Authorization header on a redirect from http://host to https://host
    (default ports); that is another origin, and the request hook drops it."""
    address = "127.0.0.3"
    context, ca_file = self_signed(tmp_path / "tls", address, address)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    user, password = "someone", secrets.token_urlsafe(16)

    def registry_answer(server: HostileServer, seen: Seen) -> Reply:
        if seen.header("Authorization") != basic_header(user, password):
            return json_reply(401, {}, [("WWW-Authenticate", 'Basic realm="fake"')])
        return Reply(302, [("Location", f"https://{address}{seen.target}")])

    try:
        registry = HostileServer(address, registry_answer).start(80)
        secure = HostileServer(address, lambda s, seen: json_reply(401, {}), tls=context).start(443)
    except OSError as exc:
        pytest.skip(f"cannot listen on {address}:80 and :443 here ({exc})")
    try:
        with (
            RegistryClient(RegistryHost.parse(address), Credentials(user, password)) as client,
            pytest.raises(ModelOpsError) as caught,
        ):
            client.check()
    finally:
        registry.stop()
        secure.stop()

    assert [seen.path for seen in secure.requests] == ["/v2/"]
    assert leaks(secure.requests, [password]) == []
    assert caught.value.info.error_class is ErrorClass.REGISTRY_AUTH
    assert one_line(caught.value).startswith(f"https://{address}:443, where registry {address}")
