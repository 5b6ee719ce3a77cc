"""Tools for checking an installation: the smoke bundle and `mops dev smoke-test`."""
