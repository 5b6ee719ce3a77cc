"""Real OCI registries for tests: Debian's CNCF distribution 2.8 (`docker-registry`) on 127.0.0.1.

Bundles are pushed to real registries in tests, never to mocks, so protocol details (upload
sessions, digests, auth challenges, token expiry) are exercised exactly as in production.

`run_registry(workdir, auth=...)` starts one registry with its own config, storage and log under
`workdir` and yields a `RunningRegistry`. Three auth kinds are supported:

* ``"none"``  - anonymous read/write.
* ``"basic"`` - htpasswd (bcrypt) with a random username/password. Distribution 2.8 serves it over
  plain HTTP without complaint; no TLS is needed.
* ``"token"`` - Docker token auth backed by a small in-process token server (see `_TokenServer`).
  Besides the random username/password it takes ACR's two token logins: a refresh token (an
  identity token, as `az acr login` stores it) by the OAuth2 refresh-token grant, and the same
  token as the password of the all-zero user (`az acr login --expose-token`).

Distribution 2.8 accepts token signatures up to 60 s past their ``exp`` claim (a fixed clock-skew
leeway). So that a ``token_ttl_s`` of a few seconds really expires after that many seconds, the
token server writes ``exp = iat + token_ttl_s - 60`` into the JWT while telling the client
``expires_in = token_ttl_s``. Clients must rely on ``expires_in``, not on decoding ``exp``.
"""

from __future__ import annotations

import atexit
import base64
import collections
import contextlib
import datetime as dt
import hmac
import http.server
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

REGISTRY_BINARY = "/usr/bin/docker-registry"
ACR_TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"
TOKEN_SERVICE = "modelops-test-registry"
TOKEN_ISSUER = "modelops-test-issuer"
# distribution 2.8 (registry/auth/token/token.go) adds this to `exp` before rejecting a token.
DISTRIBUTION_TOKEN_LEEWAY_S = 60
STARTUP_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
PORT_ATTEMPTS = 5
# Minimum bcrypt cost: distribution re-checks the hash on every request, cost 12 adds ~0.2 s each.
BCRYPT_ROUNDS = 4

AuthKind = str  # "none" | "basic" | "token"
AUTH_KINDS = ("none", "basic", "token")


class RegistryStartError(RuntimeError):
    """The registry did not come up; the message carries the tail of its log."""


# Processes still running at interpreter exit (e.g. a generator never closed) are killed here.
_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_LIVE_LOCK = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    """Last-resort cleanup so an aborted session never leaves a registry listening."""
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
        _LIVE.clear()
    for proc in procs:
        _terminate(proc)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a grace period; only ever touches our own child by PID."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    """A port that was free a moment ago; the caller retries if someone else takes it first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _log_tail(path: Path, offset: int = 0, lines: int = 40) -> str:
    """The last lines written to `path` since `offset` (the current start attempt)."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:])


def _scopes(values: dict[str, list[str]]) -> list[str]:
    """Every scope asked for: clients repeat `scope` or space-separate several in one."""
    return [s for value in values.get("scope", []) for s in value.split(" ") if s]


def _parse_scope(scope: str) -> dict[str, Any] | None:
    """`type:name:actions` -> a JWT access entry; the name may itself contain colons."""
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and kind and name):
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class _TokenServer:
    """Docker token-auth server (/token) for one registry, on a thread in this process.

    Tokens are ES256 JWTs whose header carries the signing certificate in `x5c`; the registry
    trusts that certificate through `rootcertbundle`. Only the one configured user gets tokens,
    with every action it asks for, in one of three ways (counted in `grants`):

    * ``"password"`` - GET with basic auth, the configured username and password;
    * ``"token as password"`` - GET with basic auth, the all-zero user and `refresh_token` as
      its password, as ACR takes `az acr login --expose-token` tokens;
    * ``"refresh_token"`` - POST, the OAuth2 refresh-token grant (distribution's
      spec/auth/oauth) with `refresh_token`, as Docker trades an identity token.

    Anonymous or wrong credentials on GET get 401; a bad POST gets 400 with an OAuth2 error
    code (RFC 6749 section 5.2): `invalid_grant` for a refresh token it did not issue.
    """

    def __init__(self, folder: Path, username: str, password: str, ttl_s: int) -> None:
        self.username = username
        self.password = password
        self.refresh_token = secrets.token_urlsafe(32)
        self.ttl_s = ttl_s
        self.port = 0
        self.access_tokens: list[str] = []  # every token issued, for "never shown" checks
        self.grants: collections.Counter[str] = collections.Counter()
        self.cert_path = folder / "token-cert.pem"
        self.log_path = folder / "token-server.log"
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # The key stays in memory: only the certificate is needed on disk, by the registry.
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> None:
        """Listen on the same port as before (port 0 the first time) and serve in a thread."""
        if self._server is not None:
            return
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"token-server-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=STOP_GRACE_S)

    def log(self, line: str) -> None:
        with self._lock, self.log_path.open("a") as out:
            out.write(f"{dt.datetime.now(dt.UTC).isoformat()} {line}\n")

    def basic_grant(self, authorization: str | None) -> str | None:
        """Which login a GET's basic-auth header is ("password", "token as password"), or None."""
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        if hmac.compare_digest(user, self.username) and hmac.compare_digest(
            password, self.password
        ):
            return "password"
        if user == ACR_TOKEN_USERNAME and hmac.compare_digest(password, self.refresh_token):
            return "token as password"
        return None

    def refresh_grant_error(self, form: dict[str, list[str]]) -> str | None:
        """The OAuth2 error code for a POST form, or None when it may have a token."""
        if not form.get("client_id") or not form.get("service"):
            return "invalid_request"
        if form.get("grant_type") != ["refresh_token"]:
            return "unsupported_grant_type"
        given = form.get("refresh_token", [""])[0]
        if not hmac.compare_digest(given, self.refresh_token):
            return "invalid_grant"
        return None

    def grant(self, kind: str, service: str, scopes: list[str]) -> dict[str, Any]:
        """Issue a token, counted by the way it was asked for."""
        with self._lock:
            self.grants[kind] += 1
        return self.issue(service, scopes)

    def issue(self, service: str, scopes: list[str]) -> dict[str, Any]:
        """Sign a token granting everything asked for; `exp` compensates the registry's leeway."""
        access = [entry for scope in scopes if (entry := _parse_scope(scope)) is not None]
        now = int(time.time())
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": self.username,
            "aud": service,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s - DISTRIBUTION_TOKEN_LEEWAY_S,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        header = {"typ": "JWT", "alg": "ES256", "x5c": self._x5c}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        ).encode()
        der = self._key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        jwt = f"{signing_input.decode()}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        with self._lock:
            self.access_tokens.append(jwt)
        issued_at = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "token": jwt,
            "access_token": jwt,
            "expires_in": self.ttl_s,
            "issued_at": issued_at,
        }

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/token":
                    self._reply(404, {"error": "not found"})
                    return
                kind = owner.basic_grant(self.headers.get("Authorization"))
                if kind is None:
                    self._reply(
                        401,
                        {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                        {"WWW-Authenticate": 'Basic realm="modelops-test-token"'},
                    )
                    return
                query = urllib.parse.parse_qs(url.query)
                service = query.get("service", [TOKEN_SERVICE])[0]
                self._reply(200, owner.grant(kind, service, _scopes(query)))

            def do_POST(self) -> None:
                """The OAuth2 form: answered with `access_token` only, as the spec says for a
                request without `access_type=offline`."""
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace")
                if urllib.parse.urlsplit(self.path).path != "/token":
                    self._reply(404, {"error": "not found"})
                    return
                form = urllib.parse.parse_qs(body)
                error = owner.refresh_grant_error(form)
                if error is not None:
                    self._reply(400, {"error": error})
                    return
                answer = owner.grant("refresh_token", form["service"][0], _scopes(form))
                del answer["token"]  # the GET answer's name for it
                self._reply(200, answer)

            def _reply(
                self, status: int, body: dict[str, Any], headers: dict | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                owner.log(f"{self.address_string()} {format % args}")

        return Handler


@dataclass
class RunningRegistry:
    """One live `docker-registry` process (plus its token server for auth="token")."""

    host: str
    storage: Path
    username: str | None
    password: str | None
    auth: AuthKind
    config_path: Path = field(repr=False)
    log_path: Path = field(repr=False)
    _token_server: _TokenServer | None = field(default=None, repr=False, compare=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _http_secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    _log_offset: int = field(default=0, repr=False, compare=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def port(self) -> int:
        return int(self.host.rpartition(":")[2])

    @property
    def pid(self) -> int | None:
        """PID of the registry process while it runs, else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def token_realm(self) -> str | None:
        return self._token_server.realm if self._token_server else None

    @property
    def tokens_issued(self) -> int:
        """Tokens handed out so far (0 unless auth="token"); lets tests observe refreshes."""
        return len(self.access_tokens)

    @property
    def access_tokens(self) -> list[str]:
        """Every token the token server handed out so far (none unless auth="token")."""
        return list(self._token_server.access_tokens) if self._token_server else []

    @property
    def refresh_token(self) -> str | None:
        """The identity token the token server takes (auth="token"), as `az acr login` gets."""
        return self._token_server.refresh_token if self._token_server else None

    def grants(self, kind: str) -> int:
        """Tokens handed out so far for one way of asking (see `_TokenServer`)."""
        return self._token_server.grants[kind] if self._token_server else 0

    def blob_path(self, digest: str) -> Path:
        """Where distribution keeps a blob's bytes on disk, for tamper/corruption tests."""
        algorithm, _, hex_digest = digest.partition(":")
        if algorithm != "sha256" or len(hex_digest) != 64:
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return (
            self.storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
        )

    def start(self) -> None:
        """(Re)start on the same port and storage; a no-op if already running."""
        if self._token_server is not None:
            self._token_server.start()
        if self.pid is not None:
            return
        if self._proc is not None:  # it died on its own; forget it before starting anew
            with _LIVE_LOCK:
                _LIVE.pop(self._proc.pid, None)
        self._write_config()
        # A clean environment: distribution lets REGISTRY_* variables override the config file.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # Env, not config file: keeps secrets out of files and upload URLs valid over restarts.
            "REGISTRY_HTTP_SECRET": self._http_secret,
        }
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"--- starting {REGISTRY_BINARY} on {self.host} ---\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._proc = proc
        with _LIVE_LOCK:
            _LIVE[proc.pid] = proc
        try:
            self._wait_ready(proc)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the registry (SIGTERM, SIGKILL after 10 s) and the token server; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc)
            with _LIVE_LOCK:
                _LIVE.pop(proc.pid, None)
        if self._token_server is not None:
            self._token_server.stop()

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for our process to log that it listens, then for GET /v2/ to answer 200 or 401.

        The log line comes first so a stranger answering on a port we lost the race for is never
        mistaken for our registry; a dead process fails fast with the tail of its log.
        """
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        listening = f"listening on {self.host}"
        while True:
            if proc.poll() is not None:
                raise RegistryStartError(
                    f"docker-registry on {self.host} exited with code {proc.returncode}; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path, self._log_offset)}"
                )
            if listening in _log_tail(self.log_path, self._log_offset, lines=1000):
                try:
                    with opener.open(f"{self.url}/v2/", timeout=5) as response:
                        if response.status == 200:
                            return
                except urllib.error.HTTPError as error:
                    if error.code == 401:
                        return
                except OSError:  # URLError included: refused, reset, timed out
                    pass
            if time.monotonic() > deadline:
                raise RegistryStartError(
                    f"docker-registry on {self.host} not ready after {STARTUP_TIMEOUT_S:.0f} s; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path, self._log_offset)}"
                )
            time.sleep(0.05)

    def _write_config(self) -> None:
        folder = self.config_path.parent
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  formatter: text",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {json.dumps(str(self.storage))}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: {self.host}",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        if self.auth == "basic":
            lines += [
                "auth:",
                "  htpasswd:",
                "    realm: modelops-test-registry",
                f"    path: {json.dumps(str(folder / 'htpasswd'))}",
            ]
        elif self.auth == "token":
            assert self._token_server is not None
            lines += [
                "auth:",
                "  token:",
                f"    realm: {json.dumps(self._token_server.realm)}",
                f"    service: {TOKEN_SERVICE}",
                f"    issuer: {TOKEN_ISSUER}",
                f"    rootcertbundle: {json.dumps(str(self._token_server.cert_path))}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")


def _write_htpasswd(path: Path, username: str, password: str) -> None:
    import bcrypt  # only the basic-auth registry needs it

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()
    path.write_text(f"{username}:{hashed}\n")
    path.chmod(0o600)


@contextlib.contextmanager
def run_registry(
    workdir: Path, auth: AuthKind = "none", token_ttl_s: int = 300
) -> Iterator[RunningRegistry]:
    """Start a registry under `workdir` on a free 127.0.0.1 port; always stopped on exit."""
    if auth not in AUTH_KINDS:
        raise ValueError(f"auth must be one of {AUTH_KINDS}, not {auth!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"registry-{auth}-", dir=workdir))
    storage = folder / "storage"
    storage.mkdir()
    username = password = None
    token_server = None
    if auth != "none":
        username = f"user-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(16)
    if auth == "basic":
        assert username is not None and password is not None
        _write_htpasswd(folder / "htpasswd", username, password)
    elif auth == "token":
        assert username is not None and password is not None
        token_server = _TokenServer(folder, username, password, token_ttl_s)

    registry: RunningRegistry | None = None
    try:
        for attempt in range(1, PORT_ATTEMPTS + 1):
            registry = RunningRegistry(
                host=f"127.0.0.1:{_free_port()}",
                storage=storage,
                username=username,
                password=password,
                auth=auth,
                config_path=folder / "config.yml",
                log_path=folder / "registry.log",
                _token_server=token_server,
            )
            try:
                registry.start()
                break
            except RegistryStartError as error:
                # Someone grabbed the port between our probe and the registry's bind: try another.
                if attempt == PORT_ATTEMPTS or "address already in use" not in str(error):
                    raise
        assert registry is not None
        yield registry
    finally:
        if registry is not None:
            registry.stop()
        elif token_server is not None:
            token_server.stop()
