"""A registry address: a host (and port) only, never a repository path, and which scheme.

The earlier system accepted `myacr.azurecr.io/models` as a registry and doubled the path
into every URL; here such a value is refused with the fix. So is a value with credentials
in it (`https://bob:secret@host`): a registry setting travels (the environment of every
worker, messages, shell history), a password must not; the refusal repeats none of the value.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import httpx

from modelops.contracts import ErrorClass, ModelOpsError

_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"|\[[0-9A-Fa-f:.]+\]"
)
_PORT = re.compile(r"[0-9]{1,5}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class RegistryHost:
    """`host[:port]` of an OCI distribution registry, and whether plain HTTP is allowed."""

    host: str
    port: int | None = None
    insecure: bool = False

    @classmethod
    def parse(cls, text: str, insecure: bool = False) -> RegistryHost:
        value = text.strip()
        if "@" in value:
            raise _credentials_in()
        scheme, sep, rest = value.partition("://")
        if sep:
            if scheme.lower() not in ("http", "https"):
                raise ModelOpsError(
                    ErrorClass.BAD_INPUT,
                    f"registry {text!r} uses the scheme {scheme!r}; give host[:port], "
                    "optionally with https:// or http://",
                )
            value = rest
            insecure = insecure or scheme.lower() == "http"
        value = value.rstrip("/")
        if "/" in value:
            host_part, _, path = value.partition("/")
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"registry {text!r} includes a repository path ({path!r}); set the registry to "
                f"the host only (MODELOPS_BUNDLE_REGISTRY={host_part}) and pass the repository "
                "with --repository",
            )
        host, port = _split_port(value, text)
        if not host or not _HOST.fullmatch(host):
            raise ModelOpsError(
                ErrorClass.BAD_INPUT,
                f"registry {text!r} is not a host name: expected host or host:port, "
                "e.g. localhost:5000 or myregistry.azurecr.io",
            )
        return cls(host.lower(), port, insecure)

    @property
    def address(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False

    @property
    def scheme(self) -> str:
        """Plain HTTP only on this machine's loopback or when the user said --insecure."""
        return "http" if self.is_loopback or self.insecure else "https"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.address}"

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port) of the registry: the only place its credentials go."""
        return origin_of(httpx.URL(self.base_url))

    def __str__(self) -> str:
        return self.address


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the port made explicit (https://h and https://h:443 are
    one origin)."""
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme, 0)


def origin_text(url: httpx.URL) -> str:
    """`scheme://host:port` of a URL for messages: never its path or query (a CDN's signed
    query string is a credential too) nor any user:password."""
    scheme, host, port = origin_of(url)
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _credentials_in() -> ModelOpsError:
    """The refusal of `user:password@host`. No part of the value is repeated: a password may
    itself hold `@`, `/` or `:`, so no cut of the text is certain to leave it out."""
    return ModelOpsError(
        ErrorClass.BAD_INPUT,
        "the registry given (--registry, MODELOPS_BUNDLE_REGISTRY or login's HOST) contains "
        "'@': a registry takes no credentials (user:password@host); give host[:port] only, "
        "and credentials with `mops bundle login HOST`, --username with --password-stdin, "
        "or MODELOPS_REGISTRY_USERNAME/PASSWORD",
    )


def _split_port(value: str, text: str) -> tuple[str, int | None]:
    if value.startswith("["):  # [::1]:5000
        host, _, rest = value.partition("]")
        host += "]"
        has_port, port = rest.startswith(":"), rest.removeprefix(":")
    else:
        host, colon, port = value.partition(":")
        has_port = bool(colon)
    if not has_port:
        return host, None
    if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        raise ModelOpsError(ErrorClass.BAD_INPUT, f"registry {text!r} has an invalid port {port!r}")
    return host, int(port)
