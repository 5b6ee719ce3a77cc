"""plan(): the same spec gives the same simulations anywhere, lazily, with derived seeds."""

from __future__ import annotations

import gc
import itertools
import time
import tracemalloc

import pytest

from modelops.contracts.seeds import derive_seed
from modelops.study import PlannedSim, StudySpec, parse_study, plan

SMALL = """
bundle = "models/sir"
seed = 2026
replicates = 2
[parameters]
sampler = "{sampler}"
n = 4
[parameters.fixed]
days = 90
[parameters.dims.beta]
low = 0.1
high = 0.9
[parameters.dims.gamma]
low = 0.01
high = 1.0
log = true
[parameters.dims.population]
type = "int"
low = 1000
high = 5000
"""

# Computed once and pinned: a change here changes every study's parameters. The seeds are
# derive_seed(2026, 0..2) and do not depend on the sampler; SEEDS_64 are those of
# `seed_bits = 64`, the values every study had before 32 bits became the default.
SEEDS = [479243620, 454024514, 1818751028]
SEEDS_64 = [3339473683144027492, 12896123018795801922, 3415805307851894836]
GOLDEN = {
    "uniform": [
        {"beta": 0.24314785094034896, "gamma": 0.19046989019717453, "population": 2869},
        {"beta": 0.3964004216864384, "gamma": 0.051266618016867854, "population": 4162},
    ],
    "lhs": [
        {"beta": 0.42346176455593476, "gamma": 0.3088728227078047, "population": 4068},
        {"beta": 0.794663634781028, "gamma": 0.41254996460443333, "population": 1146},
    ],
    "sobol": [
        {"beta": 0.8432090051472187, "gamma": 0.07024150984558962, "population": 3439},
        {"beta": 0.2466962717473507, "gamma": 0.21235376601371106, "population": 1151},
    ],
}


@pytest.mark.parametrize("sampler", sorted(GOLDEN))
def test_golden_first_three_simulations(sampler: str) -> None:
    first, second = GOLDEN[sampler]
    expected = [
        PlannedSim(0, 0, 0, {"days": 90, **first}, SEEDS[0]),
        PlannedSim(1, 0, 1, {"days": 90, **first}, SEEDS[1]),
        PlannedSim(2, 1, 0, {"days": 90, **second}, SEEDS[2]),
    ]
    got = list(itertools.islice(plan(parse_study(SMALL.format(sampler=sampler))), 3))
    assert got == expected
    for sim in got:  # exact types, not just equal values
        assert [type(v) for v in sim.params.values()] == [int, float, float, int]


@pytest.mark.parametrize("sampler", ["uniform", "lhs", "sobol"])
def test_same_spec_same_simulations(sampler: str) -> None:
    text = SMALL.format(sampler=sampler).replace("n = 4", "n = 64")
    once = list(plan(parse_study(text)))
    again = list(plan(parse_study(text)))
    assert once == again
    assert len(once) == 128


def test_a_different_study_seed_gives_different_samples_and_seeds() -> None:
    one = list(plan(parse_study(SMALL.format(sampler="lhs"))))
    other = list(plan(parse_study(SMALL.format(sampler="lhs").replace("2026", "2027"))))
    assert [s.params for s in one] != [s.params for s in other]
    assert not {s.seed for s in one} & {s.seed for s in other}


def test_indices_and_seeds_follow_from_the_spec() -> None:
    spec = parse_study(SMALL.format(sampler="uniform").replace("replicates = 2", "replicates = 3"))
    sims = list(plan(spec))
    assert len(sims) == spec.n_simulations == 12
    assert [s.index for s in sims] == list(range(12))
    for sim in sims:
        assert sim.index == sim.param_set * 3 + sim.replicate
        assert sim.seed == derive_seed(2026, sim.index)
        assert 0 <= sim.seed < 2**32
    assert len({s.seed for s in sims}) == 12
    # replicates share their parameter set, and only it
    for _, group in itertools.groupby(sims, key=lambda s: s.param_set):
        assert len({tuple(s.params.items()) for s in group}) == 1


def test_seeds_fit_in_32_bits_unless_the_study_asks_for_64() -> None:
    text = (
        SMALL.format(sampler="sobol")
        .replace("n = 4", "n = 64")
        .replace("replicates = 2", "replicates = 8")
    )
    default = list(plan(parse_study(text)))
    wide = list(plan(parse_study("seed_bits = 64\n" + text)))
    assert len(default) == len(wide) == 512
    assert all(0 <= sim.seed < 2**32 for sim in default)
    assert all(2**32 <= sim.seed < 2**64 for sim in wide)
    assert [sim.params for sim in wide] == [sim.params for sim in default]
    for sims in (default, wide):
        for _, group in itertools.groupby(sims, key=lambda s: s.param_set):
            assert len({s.seed for s in group}) == 8  # replicates of a set never share one


def test_64_bit_seeds_are_the_ones_studies_had_before() -> None:
    text = SMALL.format(sampler="uniform").replace("seed = 2026", "seed = 2026\nseed_bits = 64")
    assert [sim.seed for sim in itertools.islice(plan(parse_study(text)), 3)] == SEEDS_64


def big_spec() -> StudySpec:
    """200,000 simulations: 2,000 sampled parameter sets times 100 replicates."""
    return parse_study(
        SMALL.format(sampler="lhs")
        .replace("n = 4", "n = 2000")
        .replace("replicates = 2", "replicates = 100")
    )


def test_plan_is_lazy() -> None:
    spec = big_spec()
    assert spec.n_simulations == 200_000
    start = time.perf_counter()
    first = list(itertools.islice(plan(spec), 10))
    assert time.perf_counter() - start < 0.5
    assert [s.index for s in first] == list(range(10))


def test_many_parameter_sets_stream_too() -> None:
    """200,000 sets of one replicate: sets are made a block at a time, not all at once."""
    spec = parse_study(
        SMALL.format(sampler="uniform").replace("n = 4", "n = 200000").replace("replicates = 2", "")
    )
    assert spec.n_simulations == 200_000
    start = time.perf_counter()
    assert next(iter(plan(spec))).index == 0
    assert time.perf_counter() - start < 0.2


def test_a_200k_simulation_study_streams_in_flat_memory() -> None:
    spec = big_spec()
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        last = None
        for sim in plan(spec):
            count += 1
            last = sim
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert last is not None and last.index == 199_999 and last.param_set == 1999
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.1f} MB"
