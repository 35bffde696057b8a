"""Argument checks shared by the Python API (`SentenceEncoder`, `CrossEncoder`, `tfkosent.search`)."""

import numpy as np


def positive_int(value, name: str) -> int:
    """`value` as an int when it is a positive int (a NumPy integer too, bool not: True is no
    count); else ValueError naming `name`.  The one rule for counts, sizes and top_k of the
    Python API (`SentenceEncoder.encode`, `CrossEncoder.predict`, `semantic_search`, ...)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)
