"""Issue 14, fault 3: the registry stops while the workers fetch a bundle they do not have
yet; it is started again (same port, same storage) and the job is resumed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from distributed import Client
from filelock import FileLock

import modelops
from modelops import api
from modelops.jobs import run_study
from modelops.settings import Settings
from modelops.store import JobRecord, JobRecords, JobState
from modelops.study import load_study
from tests.faults.conftest import (
    Background,
    Cluster,
    Mops,
    attempts,
    blob_gets,
    busy_workers,
    layer_digests,
    manifest_gets,
    wait_for,
    write_study,
)
from tests.registry_servers import RunningRegistry

# Each simulation's fetch is retried for 7.5 s (0.5 + 1 + 2 + 4 s, the registry client's
# defaults, which no setting changes) while holding the machine's fetch lock of the bundle,
# so the failures come one after another: keep the study small.
SIMS = 4
ATTEMPTS = 5  # the first request and 4 retries


@pytest.mark.slow
def test_a_registry_stopped_while_workers_fetch_fails_them_clearly_and_a_resume_completes(
    own_registry: RunningRegistry,
    project: Path,
    cluster: Cluster,
    probe: Client,
    mops: Callable[..., Mops],
) -> None:
    study = write_study(project, SIMS, sleep=0.01, batch_size=1)
    ref = api.resolve(str(project / "model"))  # pushed, as `run` will find it
    host = own_registry.host
    # The workers' fetch of this bundle waits for its machine-wide lock while the test holds
    # it: so every worker is inside its fetch, none has read anything, when the registry stops.
    (cluster.cache / "bundles").mkdir(parents=True)
    held = FileLock(cluster.cache / "bundles" / f"{ref.hex}.lock")
    held.acquire()
    try:
        started: list[JobRecord] = []
        run = Background(
            lambda: run_study(load_study(study), scheduler=cluster.address, on_start=started.append)
        )
        wait_for(lambda: len(busy_workers(probe)) == 2, "both workers to start fetching")
        assert manifest_gets(own_registry, ref.repository, ref.digest) == 0
        own_registry.stop()
    finally:
        held.release()

    job = run.result()

    assert started and job.job_id == started[0].job_id
    assert str(ref) == job.bundle
    assert job.state is JobState.FAILED, job
    assert (job.counts.succeeded, job.counts.failed) == (0, SIMS)
    failed = attempts(job.job_id)
    assert failed.height == SIMS and failed["sim_id"].n_unique() == SIMS
    assert failed["status"].to_list() == ["failed"] * SIMS
    assert failed["error_class"].to_list() == ["registry_unreachable"] * SIMS
    for message in failed["error_message"]:
        assert "\n" not in message, message
        assert message.startswith(f"cannot reach registry {host} "), message
        assert f"(host 127.0.0.1, port {own_registry.port}) after {ATTEMPTS} attempts" in message
    assert not list((cluster.cache / "bundles").glob(".partial-*"))  # nothing half-fetched

    own_registry.start()  # the same port and the same storage
    assert own_registry.host == host
    resumed = mops("jobs", "resume", job.job_id, "--scheduler", cluster.address)

    assert resumed.wait() == 0, resumed.output()
    final = JobRecords(Settings.from_env().jobs_db).get(job.job_id)
    assert final.state is JobState.SUCCEEDED, final
    assert (final.counts.total, final.counts.succeeded, final.counts.failed) == (SIMS, SIMS, 0)
    rows = attempts(job.job_id)
    assert rows.height == 2 * SIMS  # each simulation: its failure, then one success
    per_sim = rows.group_by("sim_id").agg(
        pl.col("status").first().alias("first"),
        pl.col("status").last().alias("last"),
        (pl.col("status") == "succeeded").sum().alias("successes"),
    )
    assert per_sim.height == SIMS
    assert set(per_sim["first"]) == {"failed"} and set(per_sim["last"]) == {"succeeded"}
    assert per_sim["successes"].to_list() == [1] * SIMS
    last = modelops.results(job.job_id).simulations().collect()  # each one's last attempt
    assert last["status"].to_list() == ["succeeded"] * SIMS
    # fetched once the registry was back: each layer exactly once for the machine
    layers = layer_digests(own_registry, ref.digest)
    assert layers and all(blob_gets(own_registry, ref.repository, d) == 1 for d in layers)
