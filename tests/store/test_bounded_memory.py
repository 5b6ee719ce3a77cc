"""A large job streams through one JobWriter without its memory growing with the job."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow as pa

from modelops.contracts import SimReturn
from modelops.store import ResultStore, SimMeta
from tests.store.helpers import table_artifact

SIMS = 200_000


def test_200k_simulations_stream_through_a_bounded_buffer(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results")
    template = table_artifact({"t": [0], "infected": [7]})
    arrow_peak = 0
    tracemalloc.start()
    try:
        with store.writer("big", flush_rows=5000, flush_seconds=3600) as writer:
            for i in range(SIMS):
                task_id = f"{i:032x}"
                meta = SimMeta(task_id, i // 10, i % 10, i, {"beta": i / SIMS, "k": i % 7})
                # every result brings its own payload bytes, as results from workers do
                output = replace(template, data=b"".join((template.data, b"")))
                writer.add(meta, SimReturn(task_id, outputs={"incidence": output}, worker="w"))
                if i % 1000 == 0:
                    arrow_peak = max(arrow_peak, pa.total_allocated_bytes())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB"
    assert arrow_peak < 100 * 2**20, f"Arrow held {arrow_peak / 2**20:.0f} MiB"

    parts = list((tmp_path / "results" / "jobs" / "big" / "outputs" / "incidence").iterdir())
    assert len(parts) == SIMS // 5000
    results = store.open("big")
    frame = results["incidence"].select(
        pl.len(), pl.col("sim_id").n_unique(), pl.col("infected").sum(), pl.col("beta").max()
    )
    assert frame.collect().row(0) == (SIMS, SIMS, 7 * SIMS, (SIMS - 1) / SIMS)
    assert results.simulations().select(pl.len()).collect().item() == SIMS
