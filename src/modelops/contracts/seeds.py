"""Per-simulation seeds derived from one study seed, identical on every machine and run."""

from __future__ import annotations

import numpy as np


def derive_seed(study_seed: int, index: int) -> int:
    """The 64-bit seed of simulation `index`: the index-th child of the study's SeedSequence."""
    child = np.random.SeedSequence(entropy=study_seed, spawn_key=(index,))
    return int(child.generate_state(1, dtype=np.uint64)[0])


def derive_seeds(study_seed: int, count: int) -> list[int]:
    return [derive_seed(study_seed, i) for i in range(count)]
