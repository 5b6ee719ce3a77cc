"""Classified errors that keep their context across every boundary (child, worker, client)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from enum import StrEnum


class ErrorClass(StrEnum):
    """What kind of failure this is; decides retries and what the user is told to do."""

    MODEL = "model"
    BAD_OUTPUT = "bad_output"
    BAD_BUNDLE = "bad_bundle"
    BAD_REFERENCE = "bad_reference"
    BAD_INPUT = "bad_input"
    NOT_FOUND = "not_found"
    MISSING_DEPENDENCY = "missing_dependency"
    ENV_BUILD = "env_build"
    REGISTRY_AUTH = "registry_auth"
    REGISTRY_UNREACHABLE = "registry_unreachable"
    TIMEOUT = "timeout"
    CRASH = "crash"
    OOM = "oom"
    WORKER_LOST = "worker_lost"
    INTERNAL = "internal"


@dataclass(frozen=True)
class ErrorInfo:
    """A failure as data: survives pickling, JSON and the trip from a child process."""

    error_class: ErrorClass
    type: str
    message: str
    traceback: str = ""

    def one_line(self) -> str:
        return f"{self.error_class.value}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {
            "class": self.error_class.value,
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> ErrorInfo:
        return cls(
            ErrorClass(data["class"]), data["type"], data["message"], data.get("traceback", "")
        )

    @classmethod
    def from_exception(cls, exc: BaseException, error_class: ErrorClass | None = None) -> ErrorInfo:
        if isinstance(exc, ModelOpsError):
            return exc.info
        return cls(
            error_class or ErrorClass.INTERNAL,
            type(exc).__name__,
            str(exc) or type(exc).__name__,
            "".join(traceback.format_exception(exc)),
        )


class ModelOpsError(Exception):
    """An expected failure with a class and a one-line message for the user."""

    def __init__(
        self, error_class: ErrorClass, message: str, *, type: str = "", traceback: str = ""
    ) -> None:
        super().__init__(message)
        self.info = ErrorInfo(error_class, type or "ModelOpsError", message, traceback)

    @classmethod
    def from_info(cls, info: ErrorInfo) -> ModelOpsError:
        return cls(info.error_class, info.message, type=info.type, traceback=info.traceback)

    def __str__(self) -> str:
        return self.info.one_line()

    def __reduce__(self) -> tuple:
        return (ModelOpsError.from_info, (self.info,))
