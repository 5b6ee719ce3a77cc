"""How the SDK reaches a child: a folder holding only a link to this worker's `modelops`
package, appended to the child's path. Nothing else of the worker's environment leaks in,
and the SDK a model runs with is always the runtime's own (docs/decisions.md)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import modelops


def sdk_folder(cache: Path) -> Path:
    package = Path(modelops.__file__).resolve().parent
    key = hashlib.sha256(f"{package}|{modelops.__version__}".encode()).hexdigest()[:16]
    folder = cache / "sdk" / key
    link = folder / "modelops"
    if not link.exists():
        folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder, prefix=".link-"))
        (scratch / "modelops").symlink_to(package, target_is_directory=True)
        os.replace(scratch / "modelops", link)  # atomic: no one sees a half-made link
        scratch.rmdir()
    return folder
