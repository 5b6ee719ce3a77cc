"""The worker runtime: bundle environments, warm child processes, one task to one SimReturn."""

from modelops.runtime.runner import TaskRunner

__all__ = ["TaskRunner"]
