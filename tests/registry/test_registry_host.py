"""`RegistryHost.parse`: a registry is a host (and port) only, and the scheme follows from it."""

from __future__ import annotations

import httpx
import pytest

from modelops.bundle.registry import RegistryHost
from modelops.bundle.registry.host import origin_of
from modelops.contracts import ErrorClass, ModelOpsError


@pytest.mark.parametrize(
    ("text", "host", "port", "address"),
    [
        ("localhost", "localhost", None, "localhost"),
        ("localhost:5000", "localhost", 5000, "localhost:5000"),
        ("127.0.0.1:5000", "127.0.0.1", 5000, "127.0.0.1:5000"),
        ("[::1]:5000", "[::1]", 5000, "[::1]:5000"),
        ("[::1]", "[::1]", None, "[::1]"),
        ("myregistry.azurecr.io", "myregistry.azurecr.io", None, "myregistry.azurecr.io"),
        ("MyRegistry.AzureCR.io:443", "myregistry.azurecr.io", 443, "myregistry.azurecr.io:443"),
        ("registry-1.example.com:65535", "registry-1.example.com", 65535, None),
        ("  localhost:5000  ", "localhost", 5000, "localhost:5000"),
        ("localhost:5000/", "localhost", 5000, "localhost:5000"),
        ("http://localhost:5000", "localhost", 5000, "localhost:5000"),
        ("http://localhost:5000/", "localhost", 5000, "localhost:5000"),
        ("https://myregistry.azurecr.io/", "myregistry.azurecr.io", None, None),
    ],
)
def test_parse_accepts_host_and_port(
    text: str, host: str, port: int | None, address: str | None
) -> None:
    parsed = RegistryHost.parse(text)
    assert (parsed.host, parsed.port) == (host, port)
    expected = address or (host if port is None else f"{host}:{port}")
    assert parsed.address == expected
    assert str(parsed) == expected


@pytest.mark.parametrize(
    ("text", "host_part", "path"),
    [
        ("myacr.azurecr.io/models", "myacr.azurecr.io", "models"),
        ("localhost:5000/some/repo", "localhost:5000", "some/repo"),
        ("http://localhost:5000/team/models/", "localhost:5000", "team/models"),
        ("https://myacr.azurecr.io/models", "myacr.azurecr.io", "models"),
    ],
)
def test_parse_refuses_a_repository_path_and_says_host_only(
    text: str, host_part: str, path: str
) -> None:
    with pytest.raises(ModelOpsError) as caught:
        RegistryHost.parse(text)
    info = caught.value.info
    assert info.error_class is ErrorClass.BAD_INPUT
    assert "host only" in info.message
    assert f"MODELOPS_BUNDLE_REGISTRY={host_part}" in info.message
    assert repr(path) in info.message
    assert "--repository" in info.message
    assert "\n" not in info.message


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("localhost:abc", "abc"),
        ("localhost:0", "0"),
        ("localhost:65536", "65536"),
        ("localhost:123456", "123456"),
        ("localhost:-1", "-1"),
        ("localhost:5000:6000", "5000:6000"),
        ("[::1]:x", "x"),
    ],
)
def test_parse_refuses_a_bad_port(text: str, port: str) -> None:
    with pytest.raises(ModelOpsError) as caught:
        RegistryHost.parse(text)
    assert caught.value.info.error_class is ErrorClass.BAD_INPUT
    assert f"invalid port {port!r}" in caught.value.info.message
    assert repr(text) in caught.value.info.message


@pytest.mark.parametrize("text", ["", "   ", ":5000", "under_score.io", "-bad.io", "a b"])
def test_parse_refuses_what_is_not_a_host_name(text: str) -> None:
    with pytest.raises(ModelOpsError) as caught:
        RegistryHost.parse(text)
    assert caught.value.info.error_class is ErrorClass.BAD_INPUT
    assert "not a host name" in caught.value.info.message
    assert "localhost:5000" in caught.value.info.message  # an example of what is expected


def test_parse_refuses_an_unbracketed_ipv6_address() -> None:
    with pytest.raises(ModelOpsError) as caught:
        RegistryHost.parse("::1")
    assert caught.value.info.error_class is ErrorClass.BAD_INPUT
    assert "'::1'" in caught.value.info.message


@pytest.mark.parametrize(
    "text", ["localhost", "localhost:5000", "127.0.0.1:5000", "127.8.9.10", "[::1]:5000", "[::1]"]
)
def test_loopback_uses_plain_http(text: str) -> None:
    parsed = RegistryHost.parse(text)
    assert parsed.is_loopback
    assert parsed.scheme == "http"
    assert parsed.base_url == f"http://{parsed.address}"


@pytest.mark.parametrize(
    "text", ["myregistry.azurecr.io", "10.0.0.5:5000", "192.168.1.20", "[2001:db8::1]:5000"]
)
def test_other_hosts_use_https_unless_insecure(text: str) -> None:
    parsed = RegistryHost.parse(text)
    assert not parsed.is_loopback
    assert parsed.scheme == "https"
    assert parsed.base_url == f"https://{parsed.address}"

    insecure = RegistryHost.parse(text, insecure=True)
    assert insecure.insecure
    assert insecure.scheme == "http"
    assert insecure.base_url == f"http://{parsed.address}"


def test_an_http_prefix_means_insecure() -> None:
    parsed = RegistryHost.parse("http://myregistry.example.com:5000")
    assert parsed.insecure
    assert parsed.base_url == "http://myregistry.example.com:5000"
    assert RegistryHost.parse("https://myregistry.example.com").base_url == (
        "https://myregistry.example.com"
    )


@pytest.mark.parametrize(
    ("registry", "url", "same"),
    [
        ("myregistry.azurecr.io", "https://myregistry.azurecr.io/v2/x", True),
        ("myregistry.azurecr.io", "https://MyRegistry.AzureCR.io:443/v2/x", True),
        ("myregistry.azurecr.io:443", "https://myregistry.azurecr.io/v2/x", True),
        ("myregistry.azurecr.io", "http://myregistry.azurecr.io/v2/x", False),
        ("myregistry.azurecr.io", "https://myregistry.azurecr.io:8443/v2/x", False),
        ("myregistry.azurecr.io", "https://cdn.azurecr.io/v2/x", False),
        ("localhost:5000", "http://localhost:5000/v2/", True),
        ("localhost:5000", "http://127.0.0.1:5000/v2/", False),
        ("localhost:5000", "https://localhost:5000/v2/", False),
        ("[::1]:5000", "http://[::1]:5000/v2/", True),
        ("127.0.0.1:5000", "http://127.0.0.2:5000/v2/", False),
        ("127.0.0.1:5000", "http://127.0.0.1:5001/v2/", False),
    ],
)
def test_origin_is_scheme_host_and_port(registry: str, url: str, same: bool) -> None:
    """The unit credentials are scoped to: https://h and https://h:443 are one origin,
    another scheme, host or port is another."""
    assert (origin_of(httpx.URL(url)) == RegistryHost.parse(registry).origin) is same
