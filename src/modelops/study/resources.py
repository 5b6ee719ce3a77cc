"""How each simulation of a study may run: limits, isolation, retries, batching."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator

from modelops.contracts import Isolation
from modelops.contracts.sizes import parse_size_mb
from modelops.study.base import StudyModel, number
from modelops.study.errors import field_error, show


class Resources(StudyModel):
    """How each simulation may run; none of it changes results or cache keys."""

    timeout: float | None = Field(default=None, gt=0)
    memory_limit_mb: float | None = Field(default=None, gt=0, alias="memory_limit")
    isolation: Isolation | None = None
    max_tasks_per_process: int | None = Field(default=None, ge=1)
    retries: int = Field(default=1, ge=0)
    batch_size: int | None = Field(default=None, ge=1)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout_number(cls, value: Any) -> Any:
        return value if value is None else float(number(value))

    @field_validator("memory_limit_mb", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                size = parse_size_mb(value)
            except ValueError as exc:
                raise field_error(str(exc)) from None
            if not math.isfinite(size):  # "1e999GB": RunLimits takes finite limits only
                raise field_error(f"{show(value)} is not a finite size")
            return size
        return value if value is None else float(number(value))

    @field_validator("isolation", mode="before")
    @classmethod
    def _isolation(cls, value: Any) -> Any:
        if value is None or isinstance(value, Isolation):
            return value
        try:
            return Isolation(value)
        except ValueError:
            choices = ", ".join(i.value for i in Isolation)
            raise field_error(f"must be one of {choices}; got {show(value)}") from None
