"""Calibration: fit a model's free parameters to observed data, on the cluster.

`spec` reads a calibration file, `scores` turns simulated and observed tables into losses
and likelihoods, and `search` asks an optimiser for candidates and tells it their scores.
"""
