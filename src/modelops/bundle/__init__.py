"""Bundles: a project folder as content-addressed OCI content, stored, fetched and cached."""

from modelops.bundle.build import BuiltBundle, build_bundle
from modelops.bundle.cache import fetch_bundle
from modelops.bundle.config import BundleConfig
from modelops.bundle.layout import LayoutStore

__all__ = ["BuiltBundle", "BundleConfig", "LayoutStore", "build_bundle", "fetch_bundle"]
