"""A tiny stochastic SIR model: binomial transitions, numpy from the bundle's own environment."""

import numpy as np


def simulate(
    seed: int,
    beta: float = 0.3,
    gamma: float = 0.1,
    population: int = 1000,
    initial_infected: int = 5,
    days: int = 60,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    s, i, r = population - initial_infected, initial_infected, 0
    rows = {"day": [], "susceptible": [], "infected": [], "recovered": [], "incidence": []}
    for day in range(int(days)):
        new_infections = rng.binomial(s, 1.0 - np.exp(-beta * i / population))
        new_recoveries = rng.binomial(i, 1.0 - np.exp(-gamma))
        s -= new_infections
        i += new_infections - new_recoveries
        r += new_recoveries
        for name, value in zip(rows, (day, s, i, r, new_infections), strict=True):
            rows[name].append(value)
    return {name: np.asarray(values, dtype=np.int64) for name, values in rows.items()}
