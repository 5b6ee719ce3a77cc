"""An age-structured stochastic SEIR on the ModelOps SDK, with its contact matrix as data.

The contact matrix lives in `data/contacts.csv`, shipped inside the bundle and read when a
simulation is built, so changing the data changes the bundle digest (and the cache key).
"""

import csv
from pathlib import Path

import numpy as np
import polars as pl

from modelops.sdk import BaseModel, Param, model_output, model_scenario

# Next to this file = the bundle root (also the child's working directory on workers).
CONTACTS = Path(__file__).resolve().parent / "data" / "contacts.csv"
SCHOOL_AGE = "5-19"
ELDERLY = "65+"


def read_contacts(path: Path) -> tuple[list[str], np.ndarray]:
    """Age-group labels and the daily contact matrix C[a, b] (contacts of a with b)."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    groups = rows[0][1:]
    matrix = np.array([[float(x) for x in row[1:]] for row in rows[1:]])
    if matrix.shape != (len(groups), len(groups)):
        raise ValueError(f"{path} must hold a square matrix, got {matrix.shape}")
    return groups, matrix


class SEIRAge(BaseModel):
    """Age-structured stochastic SEIR with daily binomial transitions per age group."""

    params = {
        "beta": Param(0.005, 0.5, default=0.05, log=True, doc="infection probability per contact"),
        "sigma": Param(0.05, 1.0, default=0.2, doc="rate E -> I per day (1 / latent period)"),
        "gamma": Param(0.05, 1.0, default=0.14, doc="rate I -> R per day (1 / infectious period)"),
    }
    config = {
        "days": 120,
        "initial_infected": 10,
        "population": [6_000, 18_000, 60_000, 16_000],
        "school_contact_scale": 1.0,
        "elderly_contact_scale": 1.0,
    }

    def build_sim(self, params, config):
        groups, contacts = read_contacts(CONTACTS)
        population = np.asarray(config["population"], dtype=np.int64)
        if population.shape != (len(groups),):
            raise ValueError(f"config population needs {len(groups)} values, one per age group")
        for group, scale in (
            (SCHOOL_AGE, config["school_contact_scale"]),
            (ELDERLY, config["elderly_contact_scale"]),
        ):
            k = groups.index(group)
            contacts[k, :] *= scale
            contacts[:, k] *= scale
        infected = np.zeros(len(groups), dtype=np.int64)
        adults = groups.index("20-64")
        infected[adults] = min(config["initial_infected"], population[adults])
        return {
            "params": params,
            "days": config["days"],
            "groups": groups,
            "contacts": contacts,
            "population": population,
            "infected": infected,
        }

    def run_sim(self, state, seed):
        rng = np.random.default_rng(seed)
        beta, sigma, gamma = (state["params"][k] for k in ("beta", "sigma", "gamma"))
        n, contacts = state["population"], state["contacts"]
        s = n - state["infected"]
        e = np.zeros_like(s)
        i = state["infected"].copy()
        r = np.zeros_like(s)
        days = []
        for day in range(state["days"]):
            force = beta * contacts @ (i / np.maximum(n, 1))
            new_e = rng.binomial(s, 1.0 - np.exp(-force))
            new_i = rng.binomial(e, 1.0 - np.exp(-sigma))
            new_r = rng.binomial(i, 1.0 - np.exp(-gamma))
            s, e, i, r = s - new_e, e + new_e - new_i, i + new_i - new_r, r + new_r
            days.append((day, new_e, s, e, i, r))
        return {"groups": state["groups"], "days": days}

    def _long(self, raw, columns: dict[str, int]) -> pl.DataFrame:
        """One row per (day, age group): the shape results are easiest to filter and plot."""
        groups = raw["groups"]
        data: dict[str, list] = {"day": [], "age_group": []} | {name: [] for name in columns}
        for row in raw["days"]:
            data["day"] += [row[0]] * len(groups)
            data["age_group"] += groups
            for name, index in columns.items():
                data[name] += [int(x) for x in row[index]]
        return pl.DataFrame(data)

    @model_output("incidence")
    def incidence(self, raw):
        return self._long(raw, {"new_infections": 1})

    @model_output("prevalence")
    def prevalence(self, raw):
        return self._long(raw, {"susceptible": 2, "exposed": 3, "infectious": 4, "recovered": 5})

    @model_scenario("school_closure")
    def school_closure(self):
        return {"config": {"school_contact_scale": 0.2}}

    @model_scenario("shield_elderly")
    def shield_elderly(self):
        return {"config": {"elderly_contact_scale": 0.3}}
