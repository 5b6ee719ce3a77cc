"""OCI distribution registries: addresses, credentials, auth, the HTTP client, push."""

from modelops.bundle.registry.client import RegistryClient
from modelops.bundle.registry.credentials import Credentials, resolve_credentials
from modelops.bundle.registry.host import RegistryHost
from modelops.bundle.registry.push import PushReport, push_bundle
from modelops.bundle.registry.source import RegistrySource

__all__ = [
    "Credentials",
    "PushReport",
    "RegistryClient",
    "RegistryHost",
    "RegistrySource",
    "push_bundle",
    "resolve_credentials",
]
