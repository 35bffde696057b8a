"""Argument checks shared by the Python API (`SentenceEncoder`, `CrossEncoder`, `tfkosent.search`,
`tfkosent.quantization`, `tfkosent.beam`), and the output-path check of the CLI commands."""

import os
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


def cosine_value(value, name: str) -> float:
    """`value` as a float when it is a real number in [-1, 1] (a cosine; NumPy scalars too, bool
    and str not), else ValueError naming `name`."""
    number = not isinstance(value, (bool, np.bool_, str, bytes))
    if number:
        try:
            value_f = float(value)
        except (TypeError, ValueError):
            number = False
    if not number or not -1 <= value_f <= 1:
        raise ValueError(f"{name} must be a number in [-1, 1] (a cosine), got {value!r}")
    return value_f


def check_finite_rows(array: np.ndarray, name: str) -> None:
    """ValueError naming the first row of float [n, dim] `array` with a NaN or infinity."""
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        raise ValueError(f"{name}[{int(bad[0])}] has a NaN or infinite value "
                         f"({len(bad)} row(s) of {len(array)})")


def check_output_path(path, option: str, directory: bool = False) -> None:
    """Refuses an output path that cannot be written, before the work that fills it, with an
    error naming `option` (e.g. "--output"): a file output (`directory` False) that is an existing
    directory (IsADirectoryError), a directory output that is an existing file, or either under
    an existing file (NotADirectoryError). None (the option not given) passes."""
    if path is None:
        return
    path = os.fspath(path)
    if not directory and os.path.isdir(path):
        raise IsADirectoryError(f"{option} {path} is a directory, not a file")
    if directory and os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{option} {path} is a file, not a directory")
    parent = os.path.dirname(os.path.normpath(path))  # as given: relative stays relative
    while parent and not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if parent and os.path.exists(parent) and not os.path.isdir(parent):
        raise NotADirectoryError(f"{option} {path}: its parent {parent} is a file, not a directory")


def is_extension_float(dtype: np.dtype) -> bool:
    """bfloat16 and the float8 types (ml_dtypes, as TensorFlow hands them to NumPy: kind 'V'),
    e.g. the output of a model run under mixed_bfloat16."""
    try:
        import ml_dtypes
        ml_dtypes.finfo(dtype)
    except (ImportError, TypeError, ValueError):
        return False
    return True
