"""Whether tfkosent runs from a source checkout or from an installed package.

A checkout (a clone, `pip install -e .`) has the repository around the package: the
datasets may sit next to it (`../shared/data`), the default-model pipeline packages into
`tfkosent/assets/default_model`, and git can name the commit. An installed wheel lives in
site-packages, where none of that holds: writing a model there would be lost on the next
`pip install`, and a git command run there would describe whatever repository encloses the
virtualenv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def checkout_root() -> Optional[Path]:
    """The repository root (the directory holding setup.cfg and tfkosent/), or None when the
    package is installed."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "setup.cfg").is_file() and (root / "tfkosent").is_dir() else None
