"""TLS to the scheduler: a study runs through a scheduler and worker that speak only TLS,
with the CA, certificate and key from the settings; a plain-TCP client is refused; and a
`tls://` address without certificates is one line saying which settings to set."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import Client
from tests.cluster.external import external_cluster, make_tls_files
from tests.conftest import write_project

import modelops

MODEL = """
import json

def wire(entrypoint, params, seed):
    return {"echo": json.dumps({"x": params["x"], "seed": seed}).encode()}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = write_project(tmp_path / "project", {"wire.py": MODEL})
    monkeypatch.setenv("MODELOPS_PROJECT_DIR", str(folder))
    return folder


def test_a_study_runs_through_a_tls_scheduler_and_plain_tcp_is_refused(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = make_tls_files(tmp_path)
    with external_cluster(tmp_path, n_workers=1, preload=True, tls=tls) as cluster:
        assert cluster.address.startswith("tls://")
        (project / "modelops.toml").write_text(
            f'[cluster]\nscheduler = "{cluster.address}"\n'
            f'[tls]\nca = "{tls.ca}"\ncert = "{tls.cert}"\nkey = "{tls.key}"\n'
        )
        spec = modelops.sample_study(
            project, sampler="grid", dims=["x=1:3:3"], replicates=2, seed=5
        )
        job = modelops.run(spec, progress=False)  # scheduler and certificates: the settings

        assert job.state == "succeeded"
        assert (job.counts.total, job.counts.succeeded) == (6, 6)
        workers = job.results.simulations().collect()["worker"].unique().to_list()
        assert len(workers) == 1 and workers[0].startswith("tls://127.0.0.1:")
        echoes = job.results["echo"].collect()
        assert echoes.height == 6

        plain = cluster.address.replace("tls://", "tcp://")
        with pytest.raises((OSError, TimeoutError)):
            Client(plain, timeout=5)


def test_a_tls_scheduler_without_certificates_is_one_line_naming_the_settings(
    project: Path,
) -> None:
    with pytest.raises(modelops.ModelOpsError) as raised:
        modelops.simulate(project, scheduler="tls://127.0.0.1:1")
    message = raised.value.info.message
    assert message == (
        "tls://127.0.0.1:1 is a TLS scheduler but no certificates are set: set [tls] ca, cert "
        "and key in modelops.toml, or MODELOPS_TLS_CA, MODELOPS_TLS_CERT and MODELOPS_TLS_KEY"
    )
