"""Parameter sets from a parameter space, lazily and reproducibly.

Random samplers draw from one numpy Generator seeded with the study's root SeedSequence
(simulation seeds are its spawned children, so the two never share a stream). Points in
the unit cube are made in blocks and turned into values one block at a time, so a large
`n` costs one block of Python objects, not `n` dictionaries.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from modelops.study.space import Dimension, ParameterSpace

if TYPE_CHECKING:
    from scipy.stats import qmc

BLOCK = 4096
"""Rows of the unit cube turned into Python values at a time (no effect on the values)."""


def sampler_rng(study_seed: int) -> np.random.Generator:
    """The sampler's generator: the study's root SeedSequence itself."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(study_seed)))


def varying_sets(space: ParameterSpace, study_seed: int) -> Iterator[dict[str, Any]]:
    """The varying part of each parameter set, in order (dims in file order)."""
    if space.sampler == "list":
        yield from space.sets if space.sets is not None else [{}]
        return
    names = list(space.dims)
    if space.sampler == "grid":
        axes = [dim.grid_values() for dim in space.dims.values()]
        for combo in itertools.product(*axes):
            yield dict(zip(names, combo, strict=True))
        return
    dims = list(space.dims.values())
    for block in unit_blocks(space.sampler, len(dims), space.n or 0, study_seed):
        columns = [scale(block[:, j], dim) for j, dim in enumerate(dims)]
        for row in zip(*columns, strict=True):
            yield dict(zip(names, row, strict=True))


def unit_blocks(sampler: str, d: int, n: int, study_seed: int) -> Iterator[np.ndarray]:
    """`n` points of the unit cube [0, 1)^d, in blocks of at most BLOCK rows."""
    rng = sampler_rng(study_seed)
    from scipy.stats import qmc  # on first use: scipy.stats costs 0.4 s to import

    if sampler == "uniform":
        # Generator.random fills row by row, so blocks concatenate to one big draw.
        for start in range(0, n, BLOCK):
            yield rng.random((min(BLOCK, n - start), d))
    elif sampler == "lhs":
        # Stratification spans all n points: drawn at once (n by d floats, not n dicts).
        points = _engine(qmc.LatinHypercube, d, rng).random(n)
        for start in range(0, n, BLOCK):
            yield points[start : start + BLOCK]
    elif sampler == "sobol":
        engine = _engine(qmc.Sobol, d, rng)
        for start in range(0, n, BLOCK):
            with warnings.catch_warnings():
                # The study already warned about n; blocks continue one sequence.
                warnings.filterwarnings("ignore", "The balance properties", UserWarning)
                block = engine.random(min(BLOCK, n - start))
            yield block
    else:
        raise ValueError(f"sampler {sampler!r} draws no random points")


def _engine(cls: type[qmc.QMCEngine], d: int, rng: np.random.Generator) -> qmc.QMCEngine:
    try:
        return cls(d, rng=rng)  # scipy >= 1.15
    except TypeError:
        return cls(d, seed=rng)


def scale(unit: np.ndarray, dim: Dimension) -> list[float] | list[int]:
    """Unit-cube coordinates as values of `dim`, as Python floats or ints.

    Floats: low + u (high - low), or the same in log space. Ints: the floor of a value in
    [low, high + 1), so each integer gets an equal share (in log space when `log`).
    Log-scale values go through math.exp, the platform's libm, rather than numpy's
    CPU-dependent vector code."""
    low = float(dim.low)
    high = float(dim.high) + (1.0 if dim.type == "int" else 0.0)
    if dim.log:
        a, b = math.log(low), math.log(high)
        values = [math.exp(a + u * (b - a)) for u in unit.tolist()]
    else:
        values = (low + unit * (high - low)).tolist()
    if dim.type == "int":
        top, bottom = int(dim.high), int(dim.low)
        return [min(max(math.floor(v), bottom), top) for v in values]
    return [min(max(v, low), high) for v in values]
