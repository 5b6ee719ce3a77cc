"""Simulation seeds: derived from the study seed with SeedSequence, 32-bit by default, 64-bit
on request, pinned by a golden file, and always distinct within one parameter set."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest

from modelops.contracts import SeedBits, derive_seeds, replicate_seeds
from modelops.contracts.seeds import child_words, derive_seed, first_unused

GOLDEN = json.loads((Path(__file__).resolve().parent.parent / "golden" / "seeds.json").read_text())

# Found once by searching study seeds 0-399 for the closest pair of indices whose first
# 32-bit words are equal. Below index 2**32 - 1 a study's first words never repeat (the
# index is one word of the spawn key, and SeedSequence mixes it one-to-one), so a real
# collision needs indices on both sides: here replicates 10,000, parameter set 429,496.
COLLIDING_STUDY_SEED = 84
EARLIER, LATER = 4_294_965_351, 4_294_969_570
SET_FIRST_INDEX, SET_REPLICATES = 429_496 * 10_000, 10_000

WIDTHS: list[tuple[SeedBits, type[np.unsignedinteger]]] = [(32, np.uint32), (64, np.uint64)]


def reference(study_seed: int, index: int, dtype: type[np.unsignedinteger], words: int = 1) -> int:
    """Word `words - 1` of the child, straight from numpy: the oracle besides the file."""
    child = np.random.SeedSequence(entropy=study_seed, spawn_key=(index,))
    return int(child.generate_state(words, dtype)[words - 1])


# --- golden file ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", GOLDEN["studies"], ids=lambda e: str(e["study_seed"]))
def test_seeds_match_the_golden_file(entry: dict) -> None:
    study_seed = entry["study_seed"]
    assert derive_seeds(study_seed, 10) == entry["bits_32"]
    assert derive_seeds(study_seed, 10, bits=64) == entry["bits_64"]
    assert replicate_seeds(study_seed, 0, 10, bits=32) == entry["bits_32"]


def test_the_resolved_collision_matches_the_golden_file() -> None:
    pinned = GOLDEN["collision"]
    seeds = replicate_seeds(pinned["study_seed"], pinned["first_index"], pinned["replicates"])
    assert seeds[pinned["earlier_index"] - pinned["first_index"]] == pinned["first_word"]
    assert seeds[pinned["later_index"] - pinned["first_index"]] == pinned["later_seed"]


# --- what numpy says, independently of the file ---------------------------------------------


@pytest.mark.parametrize("study_seed", [0, 1, 42, 2**32 + 5, 2**63 + 11, 2**64 - 1])
def test_seeds_are_the_first_word_of_the_index_th_child(study_seed: int) -> None:
    assert derive_seeds(study_seed, 20) == [reference(study_seed, i, np.uint32) for i in range(20)]
    assert [derive_seed(study_seed, i) for i in range(20)] == derive_seeds(study_seed, 20)
    assert derive_seeds(study_seed, 20, bits=64) == [
        reference(study_seed, i, np.uint64) for i in range(20)
    ]


def test_64_bit_seeds_keep_the_values_studies_had_before_32_bit_became_the_default() -> None:
    """So a 64-bit study still finds its cached results (pinned before the change)."""
    assert derive_seeds(12345, 3, bits=64) == [
        13729193726644583001,
        1541481317522987174,
        16509573094957701944,
    ]


def test_32_bit_seeds_are_python_ints_that_any_seeding_function_accepts() -> None:
    seeds = derive_seeds(2024, 2000)
    assert all(type(s) is int for s in seeds)
    assert all(0 <= s < 2**32 for s in seeds)
    assert max(seeds) >= 2**31  # the full 32 bits, not fewer
    for seed in seeds[:20]:
        np.random.seed(seed)
        np.random.RandomState(seed)


def test_64_bit_seeds_use_the_full_range() -> None:
    seeds = derive_seeds(2024, 2000, bits=64)
    assert all(type(s) is int and 0 <= s < 2**64 for s in seeds)
    assert max(seeds) >= 2**63
    assert len(set(seeds)) == len(seeds)


def test_child_words_are_the_words_generate_state_gives() -> None:
    for bits, dtype in WIDTHS:
        words = child_words(7, 3, bits)
        assert [next(words) for _ in range(40)] == [
            reference(7, 3, dtype, words=k + 1) for k in range(40)
        ]


def test_seeds_are_prefix_stable_and_differ_between_study_seeds() -> None:
    assert derive_seeds(7, 10)[:5] == derive_seeds(7, 5)
    assert derive_seeds(7, 0) == []
    assert not set(derive_seeds(1, 100)) & set(derive_seeds(2, 100))


def test_only_32_and_64_bits_exist() -> None:
    with pytest.raises(ValueError, match="seed bits must be 32 or 64, got 16"):
        derive_seed(0, 0, bits=16)  # type: ignore[arg-type]


# --- replicates of one parameter set never share a seed -------------------------------------


def test_first_unused_skips_words_an_earlier_replicate_holds() -> None:
    assert first_unused([5, 8], set()) == 5
    assert first_unused([5, 5, 8, 9], {5, 8}) == 9
    assert first_unused(iter([3, 1]), {3}) == 1


def test_a_real_collision_is_resolved_with_the_childs_next_word() -> None:
    earlier, later = (
        reference(COLLIDING_STUDY_SEED, EARLIER, np.uint32),
        reference(COLLIDING_STUDY_SEED, LATER, np.uint32),
    )
    assert earlier == later  # the first words really collide
    assert SET_FIRST_INDEX <= EARLIER < LATER < SET_FIRST_INDEX + SET_REPLICATES

    seeds = replicate_seeds(COLLIDING_STUDY_SEED, SET_FIRST_INDEX, SET_REPLICATES)
    assert len(set(seeds)) == SET_REPLICATES
    second_word = reference(COLLIDING_STUDY_SEED, LATER, np.uint32, words=2)
    assert seeds[LATER - SET_FIRST_INDEX] == second_word != later
    firsts = [reference(COLLIDING_STUDY_SEED, i, np.uint32) for i in range(SET_FIRST_INDEX, LATER)]
    assert seeds[: LATER - SET_FIRST_INDEX] == firsts  # nothing else moved
    # the same indices as different parameter sets keep their first words
    assert replicate_seeds(COLLIDING_STUDY_SEED, LATER, 1) == [later]


def test_every_seed_is_the_childs_first_word_not_taken_in_its_set() -> None:
    """Property test over many sets, against numpy directly; it includes sets spanning index
    2**32 - 1, where collisions can happen."""
    rng = random.Random(2026)
    cases = [(rng.randrange(2**63), rng.randrange(2**40), rng.randrange(1, 400)) for _ in range(30)]
    cases += [(s, 2**32 - 1 - rng.randrange(300), 600) for s in range(5)]
    for study_seed, first_index, replicates in cases:
        for bits, dtype in WIDTHS:
            seeds = replicate_seeds(study_seed, first_index, replicates, bits)
            assert len(set(seeds)) == replicates
            for offset, seed in enumerate(seeds):
                words = (
                    reference(study_seed, first_index + offset, dtype, words=k)
                    for k in itertools.count(1)
                )
                assert seed == next(w for w in words if w not in seeds[:offset])


@pytest.mark.parametrize("study_seed", [0, 1, 2**32 - 1, 2**32, 2**64 - 1, 2**127 + 11, 2**200 + 7])
def test_a_set_below_the_boundary_is_computed_at_once_with_numpys_words(study_seed: int) -> None:
    """Sets below index 2**32 are computed for all replicates at once (`_first_words`), not
    through one SeedSequence each: the words must be numpy's, for study seeds of any width
    (up to seven 32-bit words of entropy) and up to the boundary."""
    rng = random.Random(study_seed)
    starts = [0, 2**31, 2**32 - 64, rng.randrange(2**32 - 64)]
    for bits, dtype in WIDTHS:
        for first_index in starts:
            seeds = replicate_seeds(study_seed, first_index, 64, bits)
            assert seeds == [reference(study_seed, first_index + k, dtype) for k in range(64)]
            assert all(type(seed) is int for seed in seeds)


def test_a_large_set_across_the_boundary_is_distinct() -> None:
    first_index = 2**32 - 1 - 40_000
    seeds = replicate_seeds(4, first_index, 80_000)  # study seed 4 has a collision here
    assert len(set(seeds)) == 80_000
    assert all(0 <= s < 2**32 for s in seeds)
    moved = [i for i, seed in enumerate(seeds) if seed != derive_seed(4, first_index + i)]
    assert moved == [52_571]


def test_first_words_do_not_repeat_below_the_boundary() -> None:
    """Why collisions never happen in practice: 2**18 random 32-bit words would hold about 8
    repeats (none with probability 0.0003); a study's first words hold none."""
    words = [derive_seed(11, i) for i in range(2**18)]
    assert len(set(words)) == len(words)
