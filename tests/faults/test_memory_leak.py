"""Issue 14: a model that leaks memory steadily, run as a study from a real registry on a
scheduler and two workers of their own processes: its warm children are replaced before
they reach the study's memory limit, so every simulation succeeds and none is `oom`."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import modelops
from modelops.store import JobState
from tests.faults.conftest import Cluster, Mops, attempts, newest_job, write_study

SIMS = 24
LEAK_MB = 20
LIMIT_MB = 200
LEAKY = """
import json, os

KEPT = []

def wire(entrypoint, params, seed):
    KEPT.append(bytearray(params["leak_mb"] << 20))  # touched: resident, never freed
    rss_kb = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    return {"echo": json.dumps({"pid": os.getpid(), "rss_mb": rss_kb / 1024}).encode()}
"""


def test_a_leaking_model_s_children_are_replaced_before_its_limit_and_every_simulation_stored(
    project: Path, cluster: Cluster, mops: Callable[..., Mops]
) -> None:
    study = write_study(project, SIMS, sleep=0)
    (project / "model" / "wire.py").write_text(textwrap.dedent(LEAKY).lstrip())
    text = study.read_text().replace("sleep = 0", f"leak_mb = {LEAK_MB}")
    study.write_text(text + f'[resources]\nmemory_limit = "{LIMIT_MB}MB"\n')

    run = mops("run", "study.toml", "--scheduler", cluster.address)

    assert run.wait() == 0, run.output()
    job = newest_job()
    assert job is not None and job.state is JobState.SUCCEEDED
    rows = attempts(job.job_id)
    assert rows.height == SIMS and rows["sim_id"].n_unique() == SIMS  # each stored once
    assert rows["status"].to_list() == ["succeeded"] * SIMS
    assert rows["error_class"].null_count() == SIMS  # none killed at the limit as `oom`
    echoes = modelops.results(job.job_id)["echo"].collect()
    answers = [json.loads(value) for value in echoes["data"]]
    assert len(answers) == SIMS
    assert max(answer["rss_mb"] for answer in answers) < LIMIT_MB  # every child under it
    # 24 x 20 MB over two workers is past the limit for either: both replaced children
    assert len({answer["pid"] for answer in answers}) > 2
