"""A registry address: a host (and port) only, never a repository path, and which scheme.

The earlier system accepted `myacr.azurecr.io/models` as a registry and doubled the path
into every URL; here such a value is refused with the fix.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from modelops.contracts import ErrorClass, ModelOpsError

_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"|\[[0-9A-Fa-f:.]+\]"
)
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class RegistryHost:
    """`host[:port]` of an OCI distribution registry, and whether plain HTTP is allowed."""

    host: str
    port: int | None = None
    insecure: bool = False

    @classmethod
    def parse(cls, text: str, insecure: bool = False) -> RegistryHost:
        value = text.strip()
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

    def __str__(self) -> str:
        return self.address


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
