"""Results and their provenance: Parquet parts per job, job records and the cache index.

Knows nothing of Dask: the cluster hands results in one at a time (`JobWriter.add`).
"""

from modelops.store.failures import FailedSimulation, FailureGroup, FailureSummary
from modelops.store.jobs import JobCounts, JobRecord, JobRecords, JobState, new_job_id
from modelops.store.results import JobResults, ResultStore, SimMeta, open_job_results
from modelops.store.writer import JobWriter, ResultsNotStored

__all__ = [
    "FailedSimulation",
    "FailureGroup",
    "FailureSummary",
    "JobCounts",
    "JobRecord",
    "JobRecords",
    "JobResults",
    "JobState",
    "JobWriter",
    "ResultStore",
    "ResultsNotStored",
    "SimMeta",
    "new_job_id",
    "open_job_results",
]
