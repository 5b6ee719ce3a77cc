"""`import modelops` as a notebook uses it: a plain script that builds a bundle, runs a
study, reads its results with polars and shows why simulations failed, using nothing but
the front door. It runs in its own process, as a notebook kernel would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import write_project

MODEL = """
import pyarrow as pa

def wire(entrypoint, params, seed):
    if params["beta"] > 0.5:
        raise ValueError(f"beta {params['beta']} is too high for this model")
    table = pa.table({"day": [0, 1, 2], "cases": [seed % 5, seed % 7, seed % 11]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"incidence": sink.getvalue().to_pybytes()}
"""

NOTEBOOK = """
import json
from pathlib import Path

import modelops

# a script, unlike a notebook, needs the guard: Dask's worker processes re-import it
if __name__ == "__main__":

    ref = modelops.build("model")
    spec = modelops.sample_study(
        "model", sampler="grid", dims=["beta=0.1:0.9:5"], replicates=2, seed=7, out=Path("s.toml")
    )
    seen = []
    job = modelops.run(spec, workers=1, progress=lambda state: seen.append(state.done))
    incidence = job.results["incidence"].collect()
    failures = job.failures()
    one = modelops.simulate("model", params={"beta": 0.2}, seed=3)
    print(json.dumps({
        "bundle": str(ref),
        "repr": repr(job),
        "state": job.state,
        "counts": [job.counts.succeeded, job.counts.failed, job.counts.total],
        "rows": incidence.height,
        "columns": incidence.columns,
        "again": modelops.job(job.id[:12]).id == job.id,
        "listed": [j.id for j in modelops.list_jobs()],
        "groups": [[g.count, g.example.message] for g in failures.groups],
        "one": one.ok,
        "file": modelops.load_study("s.toml") == spec,
        "progress": seen,
    }))
"""


def test_a_notebook_uses_only_the_front_door(tmp_path: Path) -> None:
    write_project(tmp_path / "model", {"wire.py": MODEL, "requirements.txt": "pyarrow\n"})
    script = tmp_path / "notebook.py"
    script.write_text(textwrap.dedent(NOTEBOOK))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "MODELOPS_PROJECT_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["bundle"].startswith("model@sha256:")
    assert seen["state"] == "partial"
    assert seen["counts"] == [6, 4, 10]  # beta 0.1, 0.3, 0.5 run; 0.7 and 0.9 fail
    assert seen["rows"] == 6 * 3
    assert {"sim_id", "param_set", "replicate", "seed", "beta", "day", "cases"} <= set(
        seen["columns"]
    )
    assert seen["again"] and seen["listed"][0] in seen["repr"]
    [(count, message)] = seen["groups"]
    assert count == 4 and "too high for this model" in message
    assert seen["one"] is True
    assert seen["file"] is True  # `out=` wrote the study file `mops run` would read
    # once before any result (and again when the cluster is open), then after each result
    done = seen["progress"]
    assert done[0] == 0 and done == sorted(done) and set(done) == set(range(11))


def test_import_modelops_loads_nothing_until_used() -> None:
    probe = (
        "import sys, modelops; "
        "print(all(m not in sys.modules for m in ('modelops.api', 'distributed', 'numpy')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


def test_a_registry_travels_as_one_object_and_keeps_its_password() -> None:
    import pickle

    import pytest

    import modelops

    registry = modelops.Registry("localhost:5000", "bob", "s3cret-pw", insecure=True)
    assert "s3cret-pw" not in repr(registry) and "bob" in repr(registry)
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(registry)
    assert modelops.Registry.of("localhost:5000") == modelops.Registry("localhost:5000")
    assert modelops.Registry.of(registry) is registry


def test_every_name_of_the_front_door_is_served() -> None:
    import modelops
    from modelops import api

    assert sorted(api.__all__) == sorted(modelops.API_NAMES)
    assert all(getattr(modelops, name) is getattr(api, name) for name in modelops.API_NAMES)


def test_the_api_page_documents_every_name_of_the_front_door() -> None:
    import modelops

    page = (Path(__file__).parents[2] / "docs" / "python-api.md").read_text()
    missing = [name for name in modelops.API_NAMES if f"`{name}" not in page]
    assert missing == []
