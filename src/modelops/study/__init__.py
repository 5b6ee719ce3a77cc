"""Studies: parameter spaces, samplers, replicates and seeds, and the study file.

A study file (TOML) is read into a `StudySpec`; `plan(spec)` streams its simulations
(`PlannedSim`: params and seed per simulation); `study_toml(spec)` writes one back.
Nothing here knows how they are run.
"""

from modelops.study.errors import StudyWarning
from modelops.study.load import field_problem, load_study, parse_study
from modelops.study.planning import PlannedSim, plan
from modelops.study.resources import Resources
from modelops.study.sample_cli import sample_study
from modelops.study.space import Dimension, ParameterSpace
from modelops.study.spec import StudySpec
from modelops.study.toml_out import study_toml

__all__ = [
    "Dimension",
    "ParameterSpace",
    "PlannedSim",
    "Resources",
    "StudySpec",
    "StudyWarning",
    "field_problem",
    "load_study",
    "parse_study",
    "plan",
    "sample_study",
    "study_toml",
]
