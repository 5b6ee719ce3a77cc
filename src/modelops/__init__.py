"""ModelOps: run simulation models from content-addressed bundles on Dask."""

__version__ = "0.1.0"
