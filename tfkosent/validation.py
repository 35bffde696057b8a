"""Argument checks shared by the Python API (`SentenceEncoder`, `CrossEncoder`, `tfkosent.search`,
`tfkosent.quantization`, `tfkosent.beam`)."""

from typing import Optional

import numpy as np


def int_at_least(value, name: str, minimum: int, optional: bool = False) -> Optional[int]:
    """`value` as an int when it is an int >= `minimum` (a NumPy integer too, bool not: True is
    no count), or None when `optional` and it is None; else ValueError naming `name`."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {'None or ' if optional else ''}{kind}, got {value!r}")
    return int(value)


def positive_int(value, name: str) -> int:
    """`int_at_least(value, name, 1)`: the one rule for counts, sizes and top_k of the Python
    API (`SentenceEncoder.encode`, `CrossEncoder.predict`, `semantic_search`, ...)."""
    return int_at_least(value, name, 1)


def check_finite_rows(array: np.ndarray, name: str) -> None:
    """ValueError naming the first row of float [n, dim] `array` with a NaN or infinity."""
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        raise ValueError(f"{name}[{int(bad[0])}] has a NaN or infinite value "
                         f"({len(bad)} row(s) of {len(array)})")
