"""Bundle references: `repository@sha256:<64 hex>`, the only way the system names a bundle."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelops.contracts.errors import ErrorClass, ModelOpsError

# OCI distribution spec: path components of lowercase alphanumerics joined by separators.
_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def is_digest(value: object) -> bool:
    """Whether `value` is a digest this system accepts: 'sha256:' and 64 lowercase hex
    characters, nothing else (so it is safe in a path or a URL)."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def check_repository(name: str) -> str:
    """`name` if it is a valid OCI repository name, else a one-line error saying why."""
    if _REPOSITORY.fullmatch(name):
        return name
    first = name.split("/")[0]
    if "/" in name and ":" in first:
        raise ModelOpsError(
            ErrorClass.BAD_REFERENCE,
            f"bundle reference includes a registry host ({first!r}); give the repository "
            f"only ({name.partition('/')[2]!r}) and the registry with --registry or "
            "MODELOPS_BUNDLE_REGISTRY",
        )
    raise ModelOpsError(
        ErrorClass.BAD_REFERENCE,
        f"malformed bundle reference: repository {name!r} must be lowercase "
        "letters, digits and . _ - separators, with / between path components",
    )


@dataclass(frozen=True, order=True)
class BundleRef:
    repository: str
    digest: str

    def __post_init__(self) -> None:
        check_repository(self.repository)
        if not is_digest(self.digest):
            raise ModelOpsError(
                ErrorClass.BAD_REFERENCE,
                f"malformed bundle reference: digest {self.digest!r} must be 'sha256:' "
                "followed by 64 lowercase hex characters",
            )

    @classmethod
    def parse(cls, text: str) -> BundleRef:
        repository, sep, digest = text.strip().partition("@")
        if not sep:
            raise ModelOpsError(
                ErrorClass.BAD_REFERENCE,
                f"malformed bundle reference {text!r}: expected 'repository@sha256:<64 hex>'",
            )
        return cls(repository, digest)

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"
