"""A small OCI distribution client on httpx: manifests, blobs, tags, catalog.

Why not oras-py (docs/decisions.md): it reads a whole blob into memory to upload it, writes
downloads straight to their destination without checking digests, and sits on requests;
we need streamed uploads and downloads, resumable pulls and one auth flow with token
refresh. What this module adds is small: retries with backoff, Range-resumed downloads,
chunked streamed uploads retried as a whole, and errors a person can act on.

Redirects are followed (registries send blob downloads to a CDN), without credentials when
they leave the registry's origin (auth.py). The URLs a registry hands back to be used with
its credentials, a catalog page's `Link: next` and an upload's `Location`, must stay on its
origin: one that points elsewhere is refused, never followed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from modelops import __version__
from modelops.bundle.config import MAX_MANIFEST_BYTES
from modelops.bundle.registry.auth import RegistryAuth
from modelops.bundle.registry.credentials import Credentials
from modelops.bundle.registry.host import RegistryHost, origin_of, origin_text
from modelops.contracts import ErrorClass, ModelOpsError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DOWNLOAD_CHUNK = 1 << 20
UPLOAD_CHUNK = 64 << 20
_RETRY_STATUS = {429, 500, 502, 503, 504}
MAX_BODY_BYTES = MAX_MANIFEST_BYTES  # any answer read whole: catalog and tag pages, tokens
ERROR_BODY_BYTES = 64 << 10  # an error answer is read for its message only


@dataclass(frozen=True)
class Manifest:
    data: bytes
    digest: str
    media_type: str


class RegistryClient:
    """One registry, one connection pool, one auth state; safe to share between threads."""

    def __init__(
        self,
        host: RegistryHost,
        credentials: Credentials | None = None,
        retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 60.0,
    ) -> None:
        self.host = host
        self.retries = retries
        self.backoff_s = backoff_s
        self._auth = RegistryAuth(host, credentials)
        self._http = httpx.Client(
            base_url=host.base_url,
            auth=self._auth,
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=True,
            headers={"User-Agent": f"modelops/{__version__}"},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            event_hooks={"request": [self._auth.guard]},
        )

    def __repr__(self) -> str:
        return f"RegistryClient({self.host.address!r}, {self._auth.credentials!r})"

    def __reduce__(self) -> Any:
        raise TypeError(
            "a RegistryClient holds credentials and never leaves its process; workers open "
            "their own from their MODELOPS_* settings"
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- requests, retries and errors ---------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        ok: tuple[int, ...] = (200,),
        missing_ok: bool = False,
        stream: bool = False,
        content: Callable[[], Iterable[bytes] | bytes] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries on connection errors and 5xx; map every failure to one line.
        `content` is a factory so a retried upload sends its body again from the start."""
        attempt = 0
        while True:
            try:
                request = self._http.build_request(
                    method, url, content=content() if content else None, **kwargs
                )
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise self._unreachable(exc, attempt + 1) from exc
            else:
                if response.status_code not in _RETRY_STATUS or attempt >= self.retries:
                    break
                response.close()
            attempt += 1
            time.sleep(min(self.backoff_s * 2 ** (attempt - 1), 8.0))
        if response.status_code in ok or (missing_ok and response.status_code == 404):
            return response if stream else _read_bounded(response, MAX_BODY_BYTES, what)
        # an error body is read for its message, and no further than that needs
        raise self._failure(_read_bounded(response, ERROR_BODY_BYTES), what, attempt + 1)

    def _unreachable(self, exc: Exception, attempts: int) -> ModelOpsError:
        port = self.host.port or (443 if self.host.scheme == "https" else 80)
        return ModelOpsError(
            ErrorClass.REGISTRY_UNREACHABLE,
            f"cannot reach registry {self.host} (host {self.host.host}, port {port}) after "
            f"{attempts} attempts: {type(exc).__name__}: {exc or 'connection failed'}",
            type=type(exc).__name__,
        )

    def _failure(self, response: httpx.Response, what: str, attempts: int) -> ModelOpsError:
        status = response.status_code
        if origin_of(response.url) != self.host.origin:
            return self._failure_elsewhere(response, what)
        if status in (401, 403):
            return ModelOpsError(
                ErrorClass.REGISTRY_AUTH,
                f"authentication failed for {self.host} (HTTP {status}) while accessing {what}; "
                f"check credentials (mops bundle login {self.host}, or "
                "MODELOPS_REGISTRY_USERNAME/PASSWORD)",
                type="HTTPStatusError",
            )
        if status == 404:
            return ModelOpsError(
                ErrorClass.NOT_FOUND,
                f"{what} not found in registry {self.host}",
                type="HTTPStatusError",
            )
        detail = _registry_error_detail(response)
        error_class = ErrorClass.REGISTRY_UNREACHABLE if status >= 500 else ErrorClass.BAD_INPUT
        retried = f" after {attempts} attempts" if attempts > 1 else ""
        return ModelOpsError(
            error_class,
            f"registry {self.host} answered HTTP {status} for {what}{retried}: {detail}",
            type="HTTPStatusError",
        )

    def _failure_elsewhere(self, response: httpx.Response, what: str) -> ModelOpsError:
        """A failure answered by a host the registry redirected to (a CDN): named by its
        origin only, since its URL may carry a signature."""
        status, where = response.status_code, origin_text(response.url)
        if status in (401, 403):
            return ModelOpsError(
                ErrorClass.REGISTRY_AUTH,
                f"{where}, where registry {self.host} redirected the request for {what}, "
                f"refused it (HTTP {status}); credentials go only to the registry itself, "
                "never to a host it redirects to",
                type="HTTPStatusError",
            )
        error_class = ErrorClass.REGISTRY_UNREACHABLE if status >= 500 else ErrorClass.BAD_INPUT
        return ModelOpsError(
            ErrorClass.NOT_FOUND if status == 404 else error_class,
            f"{where}, where registry {self.host} redirected the request for {what}, "
            f"answered HTTP {status}",
            type="HTTPStatusError",
        )

    def _own_origin(self, url: httpx.URL, what: str) -> httpx.URL:
        """`url` if it is on the registry's origin; a registry that points a request meant
        for its own credentials at another origin is refused."""
        if origin_of(url) != self.host.origin:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"registry {self.host} pointed {what} at another origin, {origin_text(url)}; "
                "requests that carry its credentials go only to its own origin, "
                f"{origin_text(httpx.URL(self.host.base_url))}, so nothing was sent there",
            )
        return url

    def _json(self, response: httpx.Response, what: str) -> Any:
        """JSON, or an error that says what came instead (an HTML login page, typically)."""
        content_type = response.headers.get("content-type", "none")
        if "html" in content_type.lower():
            raise ModelOpsError(
                ErrorClass.REGISTRY_AUTH
                if response.status_code in (200, 302)
                else ErrorClass.BAD_INPUT,
                f"registry {self.host} sent an HTML page (HTTP {response.status_code}, "
                f"{content_type}) where JSON was expected for {what}; is a login page or proxy "
                "in front of the registry, or is this not an OCI registry?",
            )
        try:
            return response.json()
        except ValueError as exc:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"registry {self.host} sent something that is not JSON (HTTP "
                f"{response.status_code}, {content_type}) for {what}",
            ) from exc

    # --- the API --------------------------------------------------------------------------

    def check(self) -> None:
        """Reach the registry and authenticate: the cheapest proof the settings work."""
        self._send("GET", "/v2/", f"the API root of {self.host}")

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        what = f"manifest {repository}{'@' if ':' in reference else ':'}{reference}"
        streamed = self._send(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            what,
            stream=True,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        response = _read_bounded(streamed, MAX_MANIFEST_BYTES, what)
        content = response.content
        content_type = response.headers.get("content-type", "")
        if "html" in content_type.lower():
            self._json(response, what)  # raises the HTML message
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise ModelOpsError(
                ErrorClass.BAD_BUNDLE,
                f"{what} is corrupt: registry {self.host} sent content with digest {digest}",
            )
        return Manifest(content, digest, content_type.split(";")[0])

    def _head_manifest(self, repository: str, reference: str, what: str) -> httpx.Response:
        return self._send(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            what,
            missing_ok=True,
            headers={"Accept": MANIFEST_ACCEPT},
        )

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """What a tag points at now, or None if the tag does not exist."""
        response = self._head_manifest(repository, tag, f"tag {repository}:{tag}")
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        return digest or self.get_manifest(repository, tag).digest

    def has_manifest(self, repository: str, digest: str) -> bool:
        what = f"manifest {repository}@{digest}"
        return self._head_manifest(repository, digest, what).status_code == 200

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> None:
        self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            f"manifest {repository}:{reference}",
            ok=(201,),
            content=lambda: data,
            headers={"Content-Type": media_type},
        )

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self._send(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            f"blob {digest} of {repository}",
            missing_ok=True,
        )
        return response.status_code == 200

    def blob_chunks(self, repository: str, digest: str) -> Iterator[bytes]:
        """The blob's bytes as they arrive; a dropped connection resumes with a Range request
        from the last byte received (retried with backoff), so nothing is fetched twice."""
        what = f"blob {digest} of {repository}"
        received = 0
        failures = 0
        while True:
            headers = {"Range": f"bytes={received}-"} if received else {}
            response = self._send(
                "GET",
                f"/v2/{repository}/blobs/{digest}",
                what,
                ok=(200, 206),
                stream=True,
                headers=headers,
            )
            skip = received if response.status_code == 200 else 0  # Range ignored: skip ahead
            try:
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    if chunk:
                        received += len(chunk)
                        yield chunk
                return
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.retries:
                    raise self._unreachable(exc, failures) from exc
                time.sleep(min(self.backoff_s * 2 ** (failures - 1), 8.0))
            finally:
                response.close()

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        read_range: Callable[[int, int], Iterator[bytes]],
    ) -> None:
        """Upload in chunks of UPLOAD_CHUNK, each streamed from `read_range(start, end)`. A
        session that fails is started again from the first byte: registries report how much
        they hold ambiguously (`Range: 0-0` means nothing, or one byte), and a resumed
        upload that guesses wrong is refused as corrupt at the end."""
        what = f"upload of blob {digest} to {repository}"
        failures = 0
        while True:
            try:
                self._upload_session(repository, digest, size, read_range, what)
                return
            except (httpx.TransportError, httpx.StreamConsumed, ModelOpsError) as exc:
                # StreamConsumed: the registry refused a token that expired on the way and the
                # auth flow, having fetched a new one, could not resend the streamed chunk.
                failures += 1
                retryable = not isinstance(exc, ModelOpsError) or (
                    exc.info.error_class is ErrorClass.REGISTRY_UNREACHABLE
                )
                if not retryable or failures > self.retries:
                    if isinstance(exc, ModelOpsError):
                        raise
                    raise self._unreachable(exc, failures) from exc
                time.sleep(min(self.backoff_s * 2 ** (failures - 1), 8.0))

    def _upload_session(
        self,
        repository: str,
        digest: str,
        size: int,
        read_range: Callable[[int, int], Iterator[bytes]],
        what: str,
    ) -> None:
        response = self._send("POST", f"/v2/{repository}/blobs/uploads/", what, ok=(202,))
        location = self._location(response, what)
        for start in range(0, size, UPLOAD_CHUNK):
            end = min(start + UPLOAD_CHUNK, size)
            response = self._http.patch(
                location,
                content=read_range(start, end),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{start}-{end - 1}",
                    "Content-Length": str(end - start),
                },
            )
            if response.status_code != 202:
                raise self._failure(response, what, 1)
            location = self._location(response, what)
        url = httpx.URL(location).copy_merge_params({"digest": digest})
        self._send("PUT", str(url), what, ok=(201,), content=lambda: b"")

    def tags(self, repository: str) -> list[str]:
        return [
            tag
            for page in self._pages(f"/v2/{repository}/tags/list", f"tags of {repository}")
            for tag in page.get("tags") or []
        ]

    def repositories(self) -> list[str]:
        return [
            name
            for page in self._pages("/v2/_catalog", f"the catalog of {self.host}")
            for name in page.get("repositories") or []
        ]

    def _pages(self, url: str, what: str) -> Iterator[dict]:
        next_url: str | None = url
        while next_url:
            response = self._send("GET", next_url, what)
            yield self._json(response, what)
            link = response.links.get("next", {}).get("url")
            next_url = None
            if link:
                next_page = response.url.join(link)
                next_url = str(self._own_origin(next_page, f"the next page of {what}"))

    def _location(self, response: httpx.Response, what: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"registry {self.host} answered HTTP {response.status_code} to an upload "
                "without a Location",
            )
        return str(self._own_origin(response.url.join(location), f"the {what}"))


def _registry_error_detail(response: httpx.Response) -> str:
    content_type = response.headers.get("content-type", "none")
    if "json" in content_type:
        try:
            errors = response.json().get("errors") or []
            return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or "no detail"
        except (ValueError, AttributeError):
            pass
    return f"a {content_type} body"


def _read_bounded(response: httpx.Response, limit: int, what: str | None = None) -> httpx.Response:
    """A streamed response read into memory, no further than `limit` bytes whatever its
    Content-Length claims, and closed. Past the limit: refused when `what` names the body,
    cut short when it is only an error answer read for its message."""
    body = bytearray()
    try:
        declared = int(response.headers.get("content-length", "0"))
    except ValueError:
        declared = 0
    if response.request.method == "HEAD":  # its Content-Length is the entity's, no body
        declared = 0
    try:
        if what is not None and declared > limit:
            raise _too_large(what, limit)
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                if what is not None:
                    raise _too_large(what, limit)
                del body[limit:]
                break
    finally:
        response.close()
    status, headers, request = response.status_code, response.headers, response.request
    return httpx.Response(status, headers=headers, content=bytes(body), request=request)


def _too_large(what: str, limit: int) -> ModelOpsError:
    return ModelOpsError(
        ErrorClass.BAD_BUNDLE,
        f"{what} is larger than the {limit} bytes a registry answer may be; refused",
    )
