"""BundleRef: `repository@sha256:<64 hex>`, parsed strictly, refused with one clear line."""

from __future__ import annotations

import pickle

import pytest

from modelops.contracts import BundleRef, ErrorClass, ModelOpsError

HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"


def parse_error(text: str) -> str:
    """The one-line message of the BAD_REFERENCE error that parsing `text` raises."""
    with pytest.raises(ModelOpsError) as excinfo:
        BundleRef.parse(text)
    error = excinfo.value
    assert error.info.error_class is ErrorClass.BAD_REFERENCE
    message = str(error)
    assert "\n" not in message
    assert message.startswith("bad_reference: ")
    return message


@pytest.mark.parametrize(
    "repository",
    [
        "model",
        "sir-model",
        "org/sir-model",
        "a.b_c__d---e/f0/g1",
        "0numbers1/2",
        "deep/path/to/model",
    ],
)
def test_parse_and_str_round_trip(repository: str) -> None:
    text = f"{repository}@{DIGEST}"
    ref = BundleRef.parse(text)
    assert ref.repository == repository
    assert ref.digest == DIGEST
    assert ref.hex == HEX
    assert str(ref) == text
    assert BundleRef.parse(str(ref)) == ref
    assert ref == BundleRef(repository, DIGEST)


def test_parse_ignores_surrounding_whitespace() -> None:
    assert BundleRef.parse(f"  model@{DIGEST}\n") == BundleRef("model", DIGEST)


def test_refs_are_hashable_values_and_survive_pickling() -> None:
    ref = BundleRef("model", DIGEST)
    assert {ref, BundleRef.parse(str(ref))} == {ref}
    assert pickle.loads(pickle.dumps(ref)) == ref
    assert sorted([BundleRef("z", DIGEST), ref]) == [ref, BundleRef("z", DIGEST)]


@pytest.mark.parametrize(
    ("digest", "what"),
    [
        (f"sha256:{HEX[:-1]}", "too short"),
        (f"sha256:{HEX}0", "too long"),
        (f"sha256:{HEX.upper()}", "uppercase hex"),
        (f"sha256:{HEX[:-1]}g", "not hex"),
        (HEX, "missing sha256: prefix"),
        (f"sha512:{HEX}", "other algorithm"),
        (f"SHA256:{HEX}", "uppercase algorithm"),
        ("", "empty digest"),
        (f"sha256:{HEX}@sha256:{HEX}", "two @"),
    ],
)
def test_malformed_digest_is_refused_naming_the_digest(digest: str, what: str) -> None:
    message = parse_error(f"model@{digest}")
    assert f"digest {digest!r}" in message, what
    assert "sha256:" in message


@pytest.mark.parametrize(
    "text",
    [
        f"model{DIGEST}",
        f"model:{DIGEST.removeprefix('sha256:')}",
        "model:latest",
        "model",
        "",
    ],
)
def test_missing_at_sign_is_refused_naming_the_text(text: str) -> None:
    message = parse_error(text)
    assert repr(text) in message
    assert "repository@sha256:<64 hex>" in message


@pytest.mark.parametrize(
    "repository",
    [
        "My-Model",
        "-leading",
        "trailing-",
        "trailing/",
        "/leading",
        "a//b",
        "has space",
        "a..b",
        "a___b",
        "model:latest",
        "émodel",
        "",
        "line\nbreak",
    ],
)
def test_bad_repository_is_refused_naming_the_repository(repository: str) -> None:
    message = parse_error(f"{repository}@{DIGEST}")
    assert f"repository {repository!r}" in message
    with pytest.raises(ModelOpsError) as excinfo:
        BundleRef(repository, DIGEST)
    assert excinfo.value.info.error_class is ErrorClass.BAD_REFERENCE


def test_a_registry_host_in_the_reference_is_named_with_the_fix() -> None:
    message = parse_error(f"localhost:5000/team/model@{DIGEST}")
    assert "includes a registry host ('localhost:5000')" in message
    assert "'team/model'" in message
    assert "MODELOPS_BUNDLE_REGISTRY" in message


def test_direct_construction_checks_the_digest() -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        BundleRef("model", HEX)
    assert excinfo.value.info.error_class is ErrorClass.BAD_REFERENCE
    assert repr(HEX) in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_reference_error_survives_pickling_with_its_class() -> None:
    with pytest.raises(ModelOpsError) as excinfo:
        BundleRef.parse("Bad@sha256:00")
    copy = pickle.loads(pickle.dumps(excinfo.value))
    assert isinstance(copy, ModelOpsError)
    assert copy.info == excinfo.value.info
    assert str(copy) == str(excinfo.value)
