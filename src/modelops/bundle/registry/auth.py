"""Registry authentication as one httpx.Auth flow: anonymous, HTTP basic, and the bearer-token
challenge (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`) with tokens cached per
repository and fetched again before they expire.

The token service is asked as Docker asks it: with a password, by GET with basic auth; with
an identity token (`az acr login`), by the OAuth2 refresh-token grant, a POST form
(distribution's spec/auth/oauth), so the identity token is in no header and no URL. An ACR
access token given as the password of the all-zero user is a password like any other.

Requests with streamed bodies cannot be replayed after a 401, so callers first make a
bodiless request in the same scope (the upload POST does this), and a token is renewed
before a request whenever it is near expiry, never only after a rejection.

Where credentials go (docs/security.md): the username and password, and every token, go
only to the registry's own origin (scheme, host, port) and to a token realm that origin
announced in a 401 of its own; the realm must be https unless the registry itself is plain
http (loopback or --insecure). A request anywhere else (a CDN a blob download is redirected
to) carries no Authorization header, and a 401 from there is not answered with a login.
`guard` enforces the first rule once more on every request httpx sends, redirects included.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import httpx

from modelops.bundle.registry.credentials import TOKEN_USERNAME, Credentials
from modelops.bundle.registry.host import RegistryHost, origin_of, origin_text
from modelops.contracts import ErrorClass, ModelOpsError

_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPOSITORY_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags)/")
_READ_METHODS = ("GET", "HEAD")
_EXPIRY_MARGIN_S = 10.0
_DEFAULT_TOKEN_LIFETIME_S = 60.0
_CLIENT_ID = "modelops"  # who asks, in the OAuth2 form (the spec requires one)
_AZURE_REGISTRY = re.compile(r"([a-z0-9]+)\.azurecr\.(?:io|cn|us)", re.IGNORECASE)


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    actions: frozenset[str]
    expires_at: float
    challenge: dict[str, str]  # the realm and service it came from, to fetch the next one

    def covers(self, actions: frozenset[str]) -> bool:
        return actions <= self.actions

    @property
    def fresh(self) -> bool:
        return time.monotonic() < self.expires_at


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


def _resource(request: httpx.Request) -> str:
    match = _REPOSITORY_PATH.match(request.url.path)
    if match:
        return f"repository:{match.group(1)}"
    if request.url.path.startswith("/v2/_catalog"):
        return "registry:catalog"
    return ""


def _acr_login(host: RegistryHost, *options: str) -> str:
    """The command that renews this registry's tokens: ACR issues the kinds these flows use."""
    match = _AZURE_REGISTRY.fullmatch(host.host)
    name = match.group(1).lower() if match else "<registry name>"
    return "`" + " ".join(["az acr login --name", name, *options]) + "`"


def _actions_needed(request: httpx.Request, resource: str) -> frozenset[str]:
    if resource == "registry:catalog":
        return frozenset({"*"})
    if request.method in _READ_METHODS:
        return frozenset({"pull"})
    return frozenset({"pull", "push"})


class RegistryAuth(httpx.Auth):
    def __init__(self, host: RegistryHost, credentials: Credentials | None) -> None:
        self.host = host
        self.credentials = credentials
        self._origin = host.origin
        # where an Authorization header may go: the registry, and token realms it announced
        self._trusted = {self._origin}
        self._tokens: dict[str, _Token] = {}
        self._basic = False  # the registry asked for basic auth once: send it up front
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RegistryAuth({self.host.address!r}, {self.credentials!r})"

    def guard(self, request: httpx.Request) -> None:
        """Request hook (every request sent, redirects included): an Authorization header
        reaches only the registry's origin or a token realm it announced. httpx drops it on
        a redirect to another host, but keeps it on an http-to-https one; this drops both."""
        with self._lock:
            trusted = origin_of(request.url) in self._trusted
        if not trusted:
            request.headers.pop("Authorization", None)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin_of(request.url) != self._origin:
            yield request  # not the registry: no credentials, and a 401 is not a login prompt
            return
        resource = _resource(request)
        needed = _actions_needed(request, resource)
        with self._lock:
            token = self._tokens.get(resource)
            use_basic = self._basic
        if token is not None and token.covers(needed):
            value = token.value
            if not token.fresh:  # renew before sending: a streamed body cannot be re-sent
                value = yield from self._fetch_token(token.challenge, resource, needed)
            request.headers["Authorization"] = f"Bearer {value}"
        elif use_basic and self.credentials is not None:
            request.headers["Authorization"] = self._basic_header()
        response = yield request
        if response.status_code != 401 or origin_of(response.url) != self._origin:
            return  # a 401 from where a redirect led is an error for the caller, not a login
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            if self.credentials is None or "Authorization" in request.headers:
                return  # anonymous, or these credentials were just refused: let 401 surface
            with self._lock:
                self._basic = True
            request.headers["Authorization"] = self._basic_header()
            yield request
        elif scheme == "bearer" and "realm" in params:
            response.read()
            params["realm"] = str(self._accept_realm(params["realm"], response.url))
            token = yield from self._fetch_token(params, resource, needed)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def _accept_realm(self, realm: str, announced_at: httpx.URL) -> httpx.URL:
        """The token service the registry's own 401 named, if credentials may go there."""
        try:
            url: httpx.URL | None = announced_at.join(realm)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise ModelOpsError(
                ErrorClass.REGISTRY_AUTH,
                f"registry {self.host} named a token service that is not an http(s) URL; "
                "no credentials were sent",
            )
        if url.scheme == "http" and self.host.scheme == "https":
            raise ModelOpsError(
                ErrorClass.REGISTRY_AUTH,
                f"registry {self.host} named a token service over plain HTTP "
                f"({origin_text(url)}); credentials for a registry reached over HTTPS go only "
                "to an HTTPS token service, so none were sent",
            )
        with self._lock:
            self._trusted.add(origin_of(url))
        return url

    def _basic_header(self) -> str:
        assert self.credentials is not None
        pair = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _token_request(self, realm: str, params: dict[str, str]) -> httpx.Request:
        """An identity token is traded by the OAuth2 refresh-token grant, anything else by GET
        (basic auth when there are credentials), as Docker does."""
        credentials = self.credentials
        if credentials is not None and credentials.identity_token:
            form = {
                **params,
                "grant_type": "refresh_token",
                "refresh_token": credentials.identity_token,
                "client_id": _CLIENT_ID,
            }
            return httpx.Request("POST", realm, data=form)
        headers = {"Authorization": self._basic_header()} if credentials else {}
        return httpx.Request("GET", realm, params=params, headers=headers)

    def _fix_for_a_refusal(self) -> str:
        """What to do when the token service refused to log in, by what it refused."""
        credentials = self.credentials
        if credentials is None:
            return (
                f"no credentials were found; run `mops bundle login {self.host}` or set "
                "MODELOPS_REGISTRY_USERNAME/PASSWORD"
            )
        if credentials.identity_token:
            return (
                f"the identity token from {credentials.source} was refused (it may have "
                f"expired); run {_acr_login(self.host)} again"
            )
        if credentials.username == TOKEN_USERNAME:
            return (
                f"the token given as the password of user {TOKEN_USERNAME} "
                f"({credentials.source}) was refused (it may have expired); get a new one with "
                f"{_acr_login(self.host, '--expose-token')}"
            )
        return "check the credentials"

    def _fetch_token(
        self, challenge: dict[str, str], resource: str, needed: frozenset[str]
    ) -> Generator[httpx.Request, httpx.Response, str]:
        scope = challenge.get("scope", "")
        actions = set(needed)
        if scope.count(":") >= 2:
            scope_resource, _, scope_actions = scope.rpartition(":")
            resource = resource or scope_resource
            actions |= set(scope_actions.split(","))
        params = {"service": challenge.get("service", "")}
        if resource:
            params["scope"] = f"{resource}:{','.join(sorted(actions))}"
        token_response = yield self._token_request(challenge["realm"], params)
        token_response.read()
        if token_response.status_code != 200:
            raise ModelOpsError(
                ErrorClass.REGISTRY_AUTH,
                f"authentication failed for {self.host} (HTTP {token_response.status_code} "
                f"from its token service); {self._fix_for_a_refusal()}",
            )
        try:
            body = token_response.json()
            value = body.get("token") or body["access_token"]
            lifetime = float(body.get("expires_in") or _DEFAULT_TOKEN_LIFETIME_S)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelOpsError(
                ErrorClass.REGISTRY_AUTH,
                f"the token service of {self.host} answered without a token "
                f"(content type {token_response.headers.get('content-type', 'none')})",
            ) from exc
        expires_at = time.monotonic() + max(lifetime - _EXPIRY_MARGIN_S, lifetime / 2)
        with self._lock:
            self._tokens[resource] = _Token(value, frozenset(actions), expires_at, challenge)
        return value
