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


@dataclass(frozen=True, order=True)
class BundleRef:
    repository: str
    digest: str

    def __post_init__(self) -> None:
        if not _REPOSITORY.fullmatch(self.repository):
            raise ModelOpsError(
                ErrorClass.BAD_REFERENCE,
                f"malformed bundle reference: repository {self.repository!r} must be lowercase "
                "letters, digits and . _ - separators, with / between path components",
            )
        if not _DIGEST.fullmatch(self.digest):
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
