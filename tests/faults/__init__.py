"""Fault injection on real parts (issue 14): a real registry, a real multi-process cluster."""
