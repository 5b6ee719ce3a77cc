"""Jobs: a study run on the cluster, its results streamed into the store, its record kept."""

from modelops.jobs.run import Progress, cancel_job, resume_job, run_study

__all__ = ["Progress", "cancel_job", "resume_job", "run_study"]
