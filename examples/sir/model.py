"""A stochastic SIR model on the ModelOps SDK: binomial transitions, two scenarios."""

import numpy as np
import polars as pl

from modelops.sdk import BaseModel, Param, model_output, model_scenario


class SIR(BaseModel):
    """Stochastic SIR with daily binomial infections and recoveries."""

    params = {
        "beta": Param(0.01, 2.0, default=0.3, log=True, doc="transmission rate per day"),
        "gamma": Param(0.01, 1.0, default=0.1, doc="recovery rate per day"),
        "population": Param(10, 10_000_000, default=10_000, kind="int", doc="people"),
    }
    config = {"days": 120, "initial_infected": 10, "vaccinated": 0.0}

    def build_sim(self, params, config):
        n = params["population"]
        vaccinated = round(config["vaccinated"] * n)
        infected = min(config["initial_infected"], n - vaccinated)
        return {
            "params": params,
            "days": config["days"],
            "state": (n - vaccinated - infected, infected, vaccinated),
        }

    def run_sim(self, state, seed):
        rng = np.random.default_rng(seed)
        beta, gamma = state["params"]["beta"], state["params"]["gamma"]
        n = state["params"]["population"]
        s, i, r = state["state"]
        rows = []
        for day in range(state["days"]):
            new_infections = rng.binomial(s, 1.0 - np.exp(-beta * i / n))
            new_recoveries = rng.binomial(i, 1.0 - np.exp(-gamma))
            s, i, r = s - new_infections, i + new_infections - new_recoveries, r + new_recoveries
            rows.append((day, int(new_infections), int(s), int(i), int(r)))
        return rows

    @model_output("incidence")
    def incidence(self, rows):
        return pl.DataFrame(
            {"day": [row[0] for row in rows], "new_infections": [row[1] for row in rows]}
        )

    @model_output("prevalence")
    def prevalence(self, rows):
        return pl.DataFrame(
            {
                "day": [row[0] for row in rows],
                "susceptible": [row[2] for row in rows],
                "infected": [row[3] for row in rows],
                "recovered": [row[4] for row in rows],
            }
        )

    @model_scenario("lockdown")
    def lockdown(self):
        return {"params": {"beta": 0.1}}

    @model_scenario("vaccination")
    def vaccination(self):
        return {"config": {"vaccinated": 0.5}}
