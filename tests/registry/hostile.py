"""Hostile HTTP servers for credential-scope tests: they record every request they receive.

`HostileServer` is a small threaded `http.server` that keeps each request (method, target,
headers, body) and answers through a function the test chooses. By default it listens on
127.0.0.2, a second loopback address: to the client another host, so anything it receives
left the registry's origin. Its default answer is a login prompt (`401` with
`WWW-Authenticate: Bearer realm=<itself>/token`, and a token on `/token`), the bait a stolen
password or token would take.

`forward(upstream)` makes a server a pass-through proxy to a real `docker-registry`
(tests/registry_servers.py), with a `tamper` hook that rewrites what the registry answers
(a `Link`, a `Location`, a redirect): the real registry with a hostile twist, so real auth,
pushes and pulls run through it unchanged except where a test says.

`self_signed(name)` gives a TLS context and a CA file for a fake registry reached over HTTPS.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OTHER_HOST = "127.0.0.2"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
HOSTILE_TOKEN = "hostile-token-0123456789"


@dataclass(frozen=True)
class Seen:
    """One request as it arrived."""

    method: str
    target: str  # path and query
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def raw(self) -> bytes:
        """Everything the request carried, for "no secret anywhere in it" checks."""
        head = [f"{self.method} {self.target}"] + [f"{k}: {v}" for k, v in self.headers]
        return "\r\n".join(head).encode() + b"\r\n\r\n" + self.body


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))


Answer = Callable[["HostileServer", Seen], Reply]


def json_reply(status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(
        status, [("Content-Type", "application/json"), *(headers or [])], json.dumps(body).encode()
    )


def login_prompt(server: HostileServer, seen: Seen) -> Reply:
    """Ask for credentials on everything: a bearer challenge naming this server's own token
    service, which hands out a token to whoever asks."""
    if seen.path == "/token":
        return json_reply(200, {"token": HOSTILE_TOKEN, "expires_in": 300})
    challenge = f'Bearer realm="{server.url}/token",service="hostile"'
    return json_reply(
        401,
        {"errors": [{"code": "UNAUTHORIZED", "message": "log in"}]},
        [("WWW-Authenticate", challenge)],
    )


class HostileServer:
    """A threaded HTTP(S) server that records every request and answers with `answer`."""

    def __init__(
        self,
        address: str = OTHER_HOST,
        answer: Answer = login_prompt,
        tls: ssl.SSLContext | None = None,
        name: str | None = None,
    ) -> None:
        self.address = address
        self.answer = answer
        self.tls = tls
        self.name = name or address  # the host name clients use (a TLS certificate's name)
        self.port = 0
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        """`name:port` as a registry setting (no port when it is the scheme's default)."""
        default = 443 if self.tls else 80
        return self.name if self.port == default else f"{self.name}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def start(self, port: int = 0) -> HostileServer:
        """Listen on `port` (any free one by default) and serve on a thread."""
        server = http.server.ThreadingHTTPServer((self.address, port), self._handler_class())
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"hostile-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self) -> None:
                seen = Seen(self.command, self.path, tuple(self.headers.items()), self._read_body())
                owner._record(seen)
                try:
                    reply = owner.answer(owner, seen)
                except Exception as exc:  # a test's answer failed: say so, do not hang
                    reply = Reply(500, [("Content-Type", "text/plain")], repr(exc).encode())
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers:
                        self.send_header(key, value)
                    if reply.header("Content-Length") is None:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up on this request

            def _read_body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def hostile(address: str = OTHER_HOST, answer: Answer = login_prompt) -> Iterator[HostileServer]:
    with HostileServer(address, answer) as server:
        yield server


Tamper = Callable[[Seen, Reply], Reply]


def forward(upstream: str, tamper: Tamper | None = None) -> Answer:
    """An answer that passes the request on to `upstream` (host:port, plain HTTP) and hands
    back its reply, after `tamper` had its way with it. The Host header is kept, so a
    registry builds its absolute URLs (upload locations) on the proxy's address."""

    def answer(server: HostileServer, seen: Seen) -> Reply:
        connection = http.client.HTTPConnection(upstream, timeout=60)
        try:
            headers = {k: v for k, v in seen.headers if k.lower() not in HOP_BY_HOP}
            if seen.body or seen.method in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(seen.body))
            connection.request(seen.method, seen.target, body=seen.body or None, headers=headers)
            response = connection.getresponse()
            body = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            if seen.method != "HEAD":
                kept = [(k, v) for k, v in kept if k.lower() != "content-length"]
            reply = Reply(response.status, kept, body)
        finally:
            connection.close()
        return tamper(seen, reply) if tamper else reply

    return answer


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def leaks(requests: list[Seen], secrets: list[str]) -> list[str]:
    """The requests that carried an Authorization header or any of `secrets`, described for
    an assertion message (pass the basic-auth form too: `basic_header(user, password)`)."""
    needles = [s.encode() for s in secrets if s]
    found = []
    for seen in requests:
        if seen.header("Authorization") is not None:
            found.append(f"{seen.method} {seen.path}: Authorization header")
        if any(needle in seen.raw for needle in needles):
            found.append(f"{seen.method} {seen.path}: a secret in the request")
    return found


def self_signed(folder: Path, name: str, address: str) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for `name` (and IP `address`), and the CA file that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(address))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
