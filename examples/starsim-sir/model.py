"""An existing simulator (Starsim, an agent-based framework) wrapped with the ModelOps SDK.

The SDK owns parameters, config, scenarios, seeds and outputs; Starsim owns the simulation.
build_sim builds the `ss.Sim`, run_sim runs it with the task's seed, and each output turns
Starsim's result arrays into a table.
"""

import os

# Starsim rebuilds matplotlib's font cache on its first import in a fresh environment and
# prints about it. A cluster model never plots, and concurrent workers would race on the
# same cache folder, so skip it (a user's own setting wins).
os.environ.setdefault("STARSIM_INSTALL_FONTS", "0")

import polars as pl
import starsim as ss

from modelops.sdk import BaseModel, Param, model_output, model_scenario


class StarsimSIR(BaseModel):
    """Agent-based SIR on a random contact network, simulated by Starsim."""

    params = {
        "beta": Param(
            0.001, 1.0, default=0.08, log=True, doc="transmission probability per contact"
        ),
        "n_contacts": Param(
            1, 50, default=4, kind="int", doc="contacts per agent (random network)"
        ),
        "init_prev": Param(0.001, 0.5, default=0.01, doc="share of agents infected on day 0"),
    }
    config = {"n_agents": 2000, "days": 60}

    def build_sim(self, params, config):
        # Starsim draws its random numbers when the Sim is initialised, so the seed is
        # applied in run_sim; here we only keep what is needed to build it.
        return {"params": params, "config": config}

    def run_sim(self, state, seed):
        params, config = state["params"], state["config"]
        sim = ss.Sim(
            n_agents=config["n_agents"],
            diseases=ss.SIR(beta=params["beta"], init_prev=params["init_prev"]),
            networks=ss.RandomNet(n_contacts=params["n_contacts"]),
            start=0,
            stop=config["days"],
            dt=1,
            rand_seed=seed,  # below 2**32 in studies, as numpy's legacy RNG needs
            verbose=0,
        )
        sim.run()
        return sim.results

    @model_output("incidence")
    def incidence(self, results):
        sir = results.sir
        return pl.DataFrame(
            {
                "day": [int(day) for day in results.timevec],
                "new_infections": sir.new_infections.values.astype(int),
            }
        )

    @model_output("prevalence")
    def prevalence(self, results):
        sir = results.sir
        return pl.DataFrame(
            {
                "day": [int(day) for day in results.timevec],
                "susceptible": sir.n_susceptible.values.astype(int),
                "infected": sir.n_infected.values.astype(int),
                "recovered": sir.n_recovered.values.astype(int),
                "prevalence": sir.prevalence.values,
            }
        )

    @model_scenario("distancing")
    def distancing(self):
        return {"params": {"n_contacts": 2}}
