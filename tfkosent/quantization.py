"""Embedding quantization for large corpora: int8 / uint8 (4x smaller) and binary (32x smaller).

The same contract as sentence-transformers' `quantize_embeddings`:

    int8 / uint8   each dimension mapped linearly from its [min, max] (over `ranges`, else the
                   `calibration_embeddings`, else the embeddings themselves) to 256 levels:
                   uint8 0..255, int8 -128..127
    binary         one bit per dimension (value > 0), packed 8 to a byte: int8 [n, dim / 8]
                   (the packed byte minus 128, as sentence-transformers stores it)
    ubinary        the same bits as uint8 [n, dim / 8]

Binary codes are compared by Hamming distance (`np.unpackbits(a ^ b).sum()`), int8 codes by
their dot product or after `dequantize_int8`. Only numpy is needed.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from tfkosent.validation import check_finite_rows

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def quantization_ranges(embeddings: np.ndarray, precision: str, ranges, calibration_embeddings) -> np.ndarray:
    """The per-dimension [min row, max row] float32 [2, dim] that int8/uint8 codes scale over:
    `ranges` as given (checked), else the range of `calibration_embeddings` (float [n >= 2, dim]),
    else that of `embeddings` [n, dim] themselves (n >= 2). ValueError names what is missing."""
    if ranges is not None:
        ranges = np.asarray(ranges, np.float32)
        if ranges.shape != (2, embeddings.shape[1]):
            raise ValueError(f"ranges must be [2, {embeddings.shape[1]}] (min row, max row), got "
                             f"shape {ranges.shape}")
        if not np.isfinite(ranges).all():
            raise ValueError("ranges has a NaN or infinite value")
        swapped = np.flatnonzero(ranges[0] > ranges[1])
        if len(swapped):
            d = int(swapped[0])
            raise ValueError(f"ranges[0] must be the min row and ranges[1] the max row; dimension "
                             f"{d} has min {ranges[0, d]:g} > max {ranges[1, d]:g}")
        return ranges
    if calibration_embeddings is None:
        if len(embeddings) < 2:  # min == max: every code would be the same
            raise ValueError(
                f"{precision} codes scale each dimension over its range in the embeddings, and "
                f"{len(embeddings)} embedding has none (every code would be the same): pass "
                f"calibration_embeddings (float [n >= 2, {embeddings.shape[1]}], e.g. a sample of "
                f"the corpus's embeddings) or ranges")
        source = embeddings
    else:
        source = np.asarray(calibration_embeddings, np.float32)
        if source.ndim != 2 or source.shape[1] != embeddings.shape[1] or len(source) < 2:
            raise ValueError(f"calibration_embeddings must be [n >= 2, {embeddings.shape[1]}], got "
                             f"shape {source.shape}")
        check_finite_rows(source, "calibration_embeddings")
    ranges = np.stack([source.min(axis=0), source.max(axis=0)])
    if not _spread(ranges).any():
        raise ValueError(
            f"{precision} codes scale each dimension over its range, and these {len(source)} "
            f"{'calibration ' if calibration_embeddings is not None else ''}embeddings have none "
            f"(identical rows, up to float rounding: every code would be noise); pass "
            f"calibration_embeddings (a sample of the corpus's embeddings) or ranges")
    return ranges


def _spread(ranges: np.ndarray) -> np.ndarray:
    """bool [dim]: dimensions whose range exceeds float rounding (1e-6 of its magnitude). A
    narrower one is treated as a point: scaling float noise of ~1e-8 to 255 levels made two
    identical sentences' int8 codes nearly opposite (code cosine -0.87)."""
    low, high = ranges
    return (high - low) > 1e-6 * np.maximum(np.maximum(np.abs(low), np.abs(high)), 1.0)


def quantize_embeddings(embeddings, precision: str, ranges=None,
                        calibration_embeddings: Optional[np.ndarray] = None) -> np.ndarray:
    """float [n, dim] embeddings -> `precision` codes (see the module docstring).

    ranges: float [2, dim], each dimension's (min, max) for int8 / uint8; default: those of
      `calibration_embeddings` (float [n >= 2, dim]) if given, else of `embeddings` (then a
      corpus quantized in parts gets different scales per part: pass one calibration set to
      all of them; and a single embedding, which has no range, is refused).
    Values outside the range are clipped to it. "binary" / "ubinary" need dim % 8 == 0.
    Zero embeddings [0, dim] give zero codes, whatever the ranges.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    x = np.asarray(embeddings, np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [n, dim], got shape {x.shape}")
    check_finite_rows(x, "embeddings")  # a NaN has no code: it became 0 bits or an arbitrary int8
    if precision == "float32":
        return x
    if precision in ("binary", "ubinary"):
        if x.shape[1] % 8:
            raise ValueError(f"binary precision packs 8 dimensions per byte; dim {x.shape[1]} "
                             f"is not a multiple of 8")
        bits = np.packbits(x > 0, axis=1)
        return bits if precision == "ubinary" else (bits.astype(np.int16) - 128).astype(np.int8)
    if not len(x) and ranges is None:  # no codes to scale
        ranges = np.zeros((2, x.shape[1]), np.float32)
    ranges = quantization_ranges(x, precision, ranges, calibration_embeddings)
    low, high = ranges
    spread = _spread(ranges)
    steps = np.where(spread, (high - low) / 255.0, 1.0).astype(np.float32)
    levels = np.where(spread, np.clip(np.round((x - low) / steps), 0, 255), 0)  # a point: level 0
    return levels.astype(np.uint8) if precision == "uint8" else (levels - 128).astype(np.int8)


def dequantize_int8(codes, ranges, precision: str = "int8") -> np.ndarray:
    """int8 / uint8 codes [n, dim] and the `ranges` [2, dim] they were made with -> float32,
    each value within half a step of the original (inside the range)."""
    if precision not in ("int8", "uint8"):
        raise ValueError(f"precision must be int8 or uint8, got {precision!r}")
    codes = np.asarray(codes)
    if codes.ndim not in (1, 2):
        raise ValueError(f"codes must be [n, dim] (or one [dim] row), got shape {codes.shape}")
    expected = f"[2, {codes.shape[-1]}] (the min row and max row the codes were made with)"
    if ranges is None:
        raise ValueError(f"ranges must be {expected}, got None")
    ranges = np.asarray(ranges, np.float32)
    if ranges.shape != (2, codes.shape[-1]):
        raise ValueError(f"ranges must be {expected}, got shape {ranges.shape}")
    low, high = ranges
    steps = np.where(_spread(ranges), (high - low) / 255.0, 0.0)  # a point dimension: its value
    levels = np.asarray(codes, np.float32) + (128.0 if precision == "int8" else 0.0)
    return (low + levels * steps).astype(np.float32)
