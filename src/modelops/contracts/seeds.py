"""Per-simulation seeds derived from one study seed, identical on every machine and run.

Simulation `index` owns the `index`-th child of the study's `SeedSequence`; its seed is
that child's first word: 32 bits by default, because `numpy.random.seed`, `RandomState`,
covasim and R's `set.seed` accept nothing wider, or 64 bits when a study asks. 64-bit seeds
are the values every study had before 32 bits became the default, so a study that asks
for them finds its earlier results in the cache.

Replicates of one parameter set must never share a seed. For one study, the first word
is a one-to-one function of the index while the spawn key is one 32-bit word (index below
2**32 - 1), so collisions cannot occur there; beyond it they can, and a replicate whose
first word an earlier replicate of its set already holds takes its child's next unused
word instead. The rule depends only on the study seed, the index and the seeds of the
earlier replicates of the same set, so any set's seeds can be computed on their own."""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from typing import Literal

SeedBits = Literal[32, 64]
"""How wide simulation seeds are: 32 (the default) or 64."""

_WORD_TYPES = {32: "uint32", 64: "uint64"}  # numpy dtypes, named: numpy loads on first use


def child_words(study_seed: int, index: int, bits: SeedBits = 32) -> Iterator[int]:
    """The words of simulation `index`'s child SeedSequence, in order (word k is
    `generate_state(k + 1, dtype)[k]`), made as they are asked for: almost always one."""
    if bits not in _WORD_TYPES:
        raise ValueError(f"seed bits must be 32 or 64, got {bits!r}")
    import numpy as np  # here, not at import: contracts load in `mops --help` too

    child = np.random.SeedSequence(entropy=study_seed, spawn_key=(index,))
    dtype = np.dtype(_WORD_TYPES[bits])
    made, count = 0, 1
    while True:
        # generate_state's first n words are the same whatever n is: ask for more, keep new
        words = child.generate_state(count, dtype=dtype)
        yield from (int(word) for word in words[made:])
        made, count = count, count * 2


def first_unused(words: Iterable[int], used: Container[int]) -> int:
    """The first of `words` that no earlier replicate of the parameter set holds."""
    return next(word for word in words if word not in used)


def derive_seed(study_seed: int, index: int, bits: SeedBits = 32) -> int:
    """The seed of simulation `index` taken alone: its child's first word. A replicate gets
    it unless an earlier replicate of its set already has it (see `replicate_seeds`)."""
    return next(child_words(study_seed, index, bits))


def replicate_seeds(
    study_seed: int, first_index: int, replicates: int, bits: SeedBits = 32
) -> list[int]:
    """The distinct seeds of one parameter set's replicates, simulations `first_index` to
    `first_index + replicates - 1`."""
    if bits in _WORD_TYPES and study_seed >= 0 and 0 <= first_index <= 2**32 - replicates:
        seeds = _first_words(study_seed, first_index, replicates, bits)
        if len(set(seeds)) == len(seeds):  # no word taken twice: the rule changes nothing
            return seeds
    seeds = []
    used: set[int] = set()
    for index in range(first_index, first_index + replicates):
        seed = first_unused(child_words(study_seed, index, bits), used)
        seeds.append(seed)
        used.add(seed)
    return seeds


def derive_seeds(study_seed: int, count: int, bits: SeedBits = 32) -> list[int]:
    """`count` distinct seeds for simulations that stand alone (smoke and cluster tests):
    those of simulations 0 to `count - 1` as the replicates of one parameter set."""
    return replicate_seeds(study_seed, 0, count, bits)


# The constants of numpy's SeedSequence (numpy/random/bit_generator.pyx, after O'Neill's
# seed_seq): `_first_words` must give exactly its words.
_POOL_SIZE = 4
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_XSHIFT = 16
_MASK = 0xFFFFFFFF


def _first_words(study_seed: int, first_index: int, count: int, bits: SeedBits) -> list[int]:
    """`derive_seed` of simulations `first_index` to `first_index + count - 1` (all below
    2**32, so each spawn key is one word), as numpy's SeedSequence makes them but for all
    indices at once: one SeedSequence per simulation took 13 us, half of a cached re-run."""
    import numpy as np

    indices = np.arange(first_index, first_index + count, dtype=np.uint64).astype(np.uint32)
    run = []  # the study seed as 32-bit words, least significant first, padded to the pool
    value = study_seed
    while value or not run:
        run.append(value & _MASK)
        value >>= 32
    run += [0] * (_POOL_SIZE - len(run))
    entropy = [np.full(count, word, dtype=np.uint32) for word in run] + [indices]
    hash_const = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal hash_const
        value = value ^ np.uint32(hash_const)
        hash_const = (hash_const * _MULT_A) & _MASK
        value = value * np.uint32(hash_const)
        return value ^ (value >> np.uint32(_XSHIFT))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = np.uint32(_MIX_MULT_L) * x - np.uint32(_MIX_MULT_R) * y
        return result ^ (result >> np.uint32(_XSHIFT))

    pool = [hashmix(entropy[i]) for i in range(_POOL_SIZE)]
    for source in range(_POOL_SIZE):
        for target in range(_POOL_SIZE):
            if source != target:
                pool[target] = mix(pool[target], hashmix(pool[source]))
    for source in range(_POOL_SIZE, len(entropy)):
        for target in range(_POOL_SIZE):
            pool[target] = mix(pool[target], hashmix(entropy[source]))
    hash_const = _INIT_B
    state = []
    for word in range(bits // 32):  # generate_state: a 64-bit word is two 32-bit ones
        value = pool[word] ^ np.uint32(hash_const)
        hash_const = (hash_const * _MULT_B) & _MASK
        value = value * np.uint32(hash_const)
        state.append(value ^ (value >> np.uint32(_XSHIFT)))
    if bits == 32:
        return state[0].tolist()
    low, high = (word.astype(np.uint64) for word in state)
    return (low | (high << np.uint64(32))).tolist()
