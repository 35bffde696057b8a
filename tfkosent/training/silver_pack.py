"""Carry silver pairs to another machine without carrying dataset text.

A `tfkosent silver` run is expensive (its labellers, a 12-layer bi-encoder and a
cross-encoder, must be trained first, then every pair scored), and its output,
silver.tsv, is made of sentences of the datasets, which the repository may not
hold.  But every sentence of it comes from a deterministic pool: the unique
normalized sentences of the run's `--sources`, evaluation sentences removed
(`silver.collect_sentences`).  So a pack stores only

  * pairs:  int32 [num_pairs, 2], indices into that pool;
  * scores: int32 [num_pairs], the TSV's score (written with 4 decimals) x 10^4;
  * meta:   the pool's recipe (sources, excluded evaluation sets), the sha256 of
            the pool and of the original silver.tsv,

about 12 bytes a pair, and `unpack_silver` rebuilds silver.tsv from the datasets
on the next machine, byte for byte: it refuses when the pool or the rebuilt file
differs from the recorded hashes (another version of a dataset), rather than
train on different pairs.

    tfkosent carry pack-silver runs/default_model/silver2 models/silver2.silver.npz
    tfkosent carry unpack-silver models/silver2.silver.npz runs/x --data-dir ../shared/data
    tfkosent pipeline default-model ... --adopt silver2=models/silver2.silver.npz
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from typing import List, Optional, Tuple

import numpy as np

from tfkosent.data.datasets import atomic_write_bytes

FORMAT = "tfkosent-silver-pack"
VERSION = 1
PACK_META = "silver_pack.json"  # written beside an unpacked silver.tsv


class SilverPackError(ValueError):
    """A pack that cannot be made or rebuilt (names the file, line or hash that differs)."""


def _pool_sha256(sentences: List[str]) -> str:
    return hashlib.sha256("\n".join(sentences).encode("utf-8")).hexdigest()


def _score_text(q: int) -> str:
    """int x 10^4 -> the TSV's text ("%.4f" of a non-negative score), without float rounding."""
    return f"{q // 10000}.{q % 10000:04d}"


def find_silver_dir(path: str) -> str:
    """The directory holding candidates.json and silver.tsv: PATH itself (a `tfkosent silver
    --out` directory) or PATH/out (a pipeline silver step's directory)."""
    from tfkosent.training.silver import CANDIDATES_META, SILVER_FILE
    for candidate in (path, os.path.join(path, "out")):
        if (os.path.isfile(os.path.join(candidate, CANDIDATES_META))
                and os.path.isfile(os.path.join(candidate, SILVER_FILE))):
            return candidate
    raise SilverPackError(f"{path}: no {CANDIDATES_META} and {SILVER_FILE} in it or in its out/ "
                          f"(expected a finished `tfkosent silver --out` directory or silver step)")


def _pool(sources, excluded, data_dir: Optional[str]) -> List[str]:
    from tfkosent.training.silver import collect_sentences, evaluation_sentences
    return collect_sentences(sources, data_dir, exclude=evaluation_sentences(data_dir, excluded))


def pack_silver(silver_dir: str, out_path: str, data_dir: Optional[str] = None) -> dict:
    """SILVER_DIR's silver.tsv -> OUT_PATH (.npz); returns the pack's meta."""
    from tfkosent.training.silver import CANDIDATES_META, SILVER_FILE, SUMMARY_FILE
    directory = find_silver_dir(silver_dir)
    with open(os.path.join(directory, CANDIDATES_META), encoding="utf-8") as f:
        candidates = json.load(f)
    tsv = os.path.join(directory, SILVER_FILE)
    with open(tsv, "rb") as f:
        raw = f.read()
    sentences = _pool(candidates["sources"], candidates["excluded"], data_dir)
    if len(sentences) != candidates.get("num_sentences", len(sentences)):
        raise SilverPackError(f"the datasets give {len(sentences)} sentences for sources "
                              f"{candidates['sources']}, the run had {candidates['num_sentences']} "
                              f"({os.path.join(directory, CANDIDATES_META)}): other dataset files?")
    index = {s: i for i, s in enumerate(sentences)}
    lines = raw.decode("utf-8").split("\n")
    if lines[0] != "sentence1\tsentence2\tscore" or lines[-1] != "":
        raise SilverPackError(f"{tsv}: not a silver.tsv (header {lines[0]!r})")
    pairs = np.zeros((len(lines) - 2, 2), np.int32)
    scores = np.zeros(len(lines) - 2, np.int32)
    for n, line in enumerate(lines[1:-1]):
        fields = line.split("\t")
        if len(fields) != 3:
            raise SilverPackError(f"{tsv}, line {n + 2}: {len(fields)} fields, expected 3")
        a, b, score = fields
        for side, sentence in ((0, a), (1, b)):
            if sentence not in index:
                raise SilverPackError(f"{tsv}, line {n + 2}: sentence{side + 1} is not in the pool "
                                      f"of {candidates['sources']} (edited by hand?)")
            pairs[n, side] = index[sentence]
        q = int(round(float(score) * 10000))
        if q < 0 or _score_text(q) != score:
            raise SilverPackError(f"{tsv}, line {n + 2}: score {score!r} is not a 4-decimal score "
                                  f"in [0, 5]")
        scores[n] = q
    summary = {}
    if os.path.isfile(os.path.join(directory, SUMMARY_FILE)):
        with open(os.path.join(directory, SUMMARY_FILE), encoding="utf-8") as f:
            summary = json.load(f)
    meta = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": os.path.abspath(tsv), "sources": candidates["sources"],
            "excluded": candidates["excluded"], "num_sentences": len(sentences),
            "sentences_sha256": _pool_sha256(sentences), "num_pairs": int(len(pairs)),
            "silver_sha256": hashlib.sha256(raw).hexdigest(), "silver_bytes": len(raw),
            "candidates": candidates, "summary": summary}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, pairs=pairs, scores=scores,
                        meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), np.uint8))
    atomic_write_bytes(out_path, buffer.getvalue())
    return dict(meta, bytes=len(buffer.getvalue()))


def read_pack(path: str) -> Tuple[dict, np.ndarray, np.ndarray]:
    """(meta, pairs int32 [n, 2], scores int32 [n]) of a pack; SilverPackError if it is not one."""
    try:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            pairs, scores = data["pairs"], data["scores"]
    except (OSError, KeyError, ValueError) as e:
        raise SilverPackError(f"{path}: not a silver pack ({e})") from e
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise SilverPackError(f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
                              f"expected {FORMAT!r} version {VERSION}")
    if pairs.shape != (meta["num_pairs"], 2) or scores.shape != (meta["num_pairs"],):
        raise SilverPackError(f"{path}: pairs {pairs.shape} / scores {scores.shape} for "
                              f"{meta['num_pairs']} pairs")
    return meta, pairs, scores


def unpack_silver(path: str, out_dir: str, data_dir: Optional[str] = None) -> dict:
    """PATH (a pack) -> OUT_DIR/silver.tsv (+ silver_pack.json), byte-identical to the packed
    file or not written at all; returns the pack's meta with `silver` (the TSV's path)."""
    from tfkosent.training.silver import SILVER_FILE
    meta, pairs, scores = read_pack(path)
    sentences = _pool(meta["sources"], meta["excluded"], data_dir)
    if len(sentences) != meta["num_sentences"] or _pool_sha256(sentences) != meta["sentences_sha256"]:
        raise SilverPackError(f"{path}: the datasets give another sentence pool for sources "
                              f"{meta['sources']} ({len(sentences)} sentences, {meta['num_sentences']} "
                              f"packed; sha256 differs): other versions of the dataset files")
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(sentences)):
        raise SilverPackError(f"{path}: pair indices outside the pool of {len(sentences)} sentences")
    rows = [f"{sentences[a]}\t{sentences[b]}\t{_score_text(int(q))}" for (a, b), q in zip(pairs, scores)]
    raw = ("\n".join(["sentence1\tsentence2\tscore"] + rows) + "\n").encode("utf-8")
    if hashlib.sha256(raw).hexdigest() != meta["silver_sha256"]:
        raise SilverPackError(f"{path}: the rebuilt silver.tsv differs from the packed one (sha256)")
    os.makedirs(out_dir, exist_ok=True)
    tsv = os.path.join(out_dir, SILVER_FILE)
    atomic_write_bytes(tsv, raw)
    atomic_write_bytes(os.path.join(out_dir, PACK_META),
                       (json.dumps(dict(meta, unpacked_from=os.path.abspath(path)), ensure_ascii=False,
                                   indent=2) + "\n").encode("utf-8"))
    return dict(meta, silver=os.path.abspath(tsv))
