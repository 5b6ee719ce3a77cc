"""A study as a stream of planned simulations: parameters, replicate and seed for each."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from modelops.contracts.seeds import replicate_seeds
from modelops.study.samplers import varying_sets
from modelops.study.spec import StudySpec


@dataclass(frozen=True, slots=True)
class PlannedSim:
    """One simulation of a study. `index` = param_set * replicates + replicate, and the
    seed comes from `replicate_seeds` over the set's indices: both depend only on the spec."""

    index: int
    param_set: int
    replicate: int
    params: dict[str, Any]
    seed: int


def plan(spec: StudySpec) -> Iterator[PlannedSim]:
    """Every simulation of `spec`, in index order, made as it is asked for: memory stays
    flat however many simulations the study has (only one set's seeds are held, to keep
    its replicates' seeds distinct). Each sim gets its own params dict."""
    fixed = spec.parameters.fixed
    replicates = spec.replicates
    for param_set, varying in enumerate(varying_sets(spec.parameters, spec.seed)):
        params = {**fixed, **varying}
        first = param_set * replicates
        seeds = replicate_seeds(spec.seed, first, replicates, spec.seed_bits)
        for replicate, seed in enumerate(seeds):
            yield PlannedSim(first + replicate, param_set, replicate, dict(params), seed)
