"""The output directory of `tfkosent embed-corpus`, and how to read it back.

    OUTPUT/
      embeddings-00000-of-00002.tfrecord   tf.train.Example {id: bytes, embedding: float [hidden]}
      embeddings-00001-of-00002.tfrecord
      embeddings-00000-of-00001.parquet    (--format parquet|both) columns id: string,
                                           embedding: list<float32>
      dead_letter.jsonl                    one JSON object per rejected line:
                                           {"id", "file", "line", "reason", "detail", "text"}
      embed_corpus.json                    manifest, written last: counts, model, the exact
                                           list of shard files

An id is `<file>:<line>`: the file's path relative to the common directory
of the inputs (with one input pattern, its directory: `a.txt`,
`sub/b.txt.gz`; with inputs `d1/x.txt` and `d2/x.txt`, `d1/x.txt` and
`d2/x.txt`; the manifest's `id_base`) and its 1-based line number. Every
valid input line appears exactly once in the embeddings; every other line
exactly once in dead_letter.jsonl.

While a run is in progress OUTPUT also holds `.embed-corpus-staging-<id>/`
(and, while an earlier output is being replaced, `.embed-corpus-replaced-<id>/`);
the files above appear only when the run has succeeded, the manifest last.

Nothing here imports Beam: reading TFRecord shards needs TensorFlow, reading
Parquet shards needs pyarrow.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

EMBEDDINGS_PREFIX = "embeddings"
DEAD_LETTER_NAME = "dead_letter.jsonl"
MANIFEST_NAME = "embed_corpus.json"
FORMATS = ("tfrecord", "parquet")
SUFFIXES = {"tfrecord": ".tfrecord", "parquet": ".parquet"}
ID_FEATURE = "id"
EMBEDDING_FEATURE = "embedding"
MANIFEST_FORMAT = "tfkosent-embeddings"
MANIFEST_FORMAT_VERSION = 1

_SHARD_RE = re.compile(r"-(\d{5,})-of-(\d{5,})(\.[A-Za-z0-9]+)$")


def _gfile():
    import tensorflow as tf
    return tf.io.gfile


def _join(*parts: str) -> str:
    # Works for local paths and URLs (gs://...): both use "/".
    return posixpath.join(*parts) if "://" in parts[0] else os.path.join(*parts)


def parse_id(sentence_id: str) -> Tuple[str, int]:
    """`"sub/a.txt:17"` -> `("sub/a.txt", 17)`."""
    name, _, line = sentence_id.rpartition(":")
    if not name or not line.isdigit():
        raise ValueError(f"not a tfkosent sentence id (FILE:LINE): {sentence_id!r}")
    return name, int(line)


def id_sort_key(sentence_id: str) -> Tuple[str, int]:
    """Orders ids by file, then numerically by line (`a:2` before `a:10`)."""
    return parse_id(sentence_id)


def read_manifest(output_dir: str) -> Optional[dict]:
    """The manifest `embed_corpus.json`, or None when the run did not finish."""
    path = _join(output_dir, MANIFEST_NAME)
    gfile = _gfile()
    if not gfile.exists(path):
        return None
    with gfile.GFile(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def shard_files(output_dir: str, fmt: str = "tfrecord") -> List[str]:
    """The embedding shards of one format, checked to be one complete set.

    Uses the manifest's list when there is one; otherwise globs and checks
    that all shards say the same `-of-N` and that all N are present (stale
    shards of an earlier run with another shard count would duplicate ids).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    manifest = read_manifest(output_dir)
    if manifest is not None:
        names = manifest.get("files", {}).get(fmt)
        if names is None:
            raise FileNotFoundError(f"{output_dir}: this run wrote no {fmt} shards "
                                    f"(formats: {sorted(manifest.get('files', {}))})")
        return [_join(output_dir, n) for n in names]
    gfile = _gfile()
    paths = sorted(gfile.glob(_join(output_dir, f"{EMBEDDINGS_PREFIX}-*{SUFFIXES[fmt]}")))
    if not paths:
        raise FileNotFoundError(f"{output_dir}: no {EMBEDDINGS_PREFIX}-*{SUFFIXES[fmt]} shards")
    totals = set()
    indices = set()
    for p in paths:
        m = _SHARD_RE.search(p)
        if not m:
            raise ValueError(f"{p}: not named like a shard (-SSSSS-of-NNNNN)")
        indices.add(int(m.group(1)))
        totals.add(int(m.group(2)))
    if len(totals) != 1 or indices != set(range(next(iter(totals)))):
        raise ValueError(f"{output_dir}: shards are not one complete set "
                         f"(of-counts {sorted(totals)}, indices {sorted(indices)})")
    return paths


def _read_tfrecord(paths: Sequence[str], with_embeddings: bool, dim: Optional[int]):
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(list(paths))
    ids: List[str] = []
    chunks: List[np.ndarray] = []
    if with_embeddings and dim is None:
        for raw in ds.take(1):
            example = tf.train.Example.FromString(raw.numpy())
            dim = len(example.features.feature[EMBEDDING_FEATURE].float_list.value)
        if dim is None:  # no records at all
            return ids, np.zeros((0, 0), np.float32)
    spec = {ID_FEATURE: tf.io.FixedLenFeature([], tf.string)}
    if with_embeddings:
        spec[EMBEDDING_FEATURE] = tf.io.FixedLenFeature([dim], tf.float32)
    for batch in ds.batch(4096).map(lambda x: tf.io.parse_example(x, spec)):
        ids.extend(s.decode("utf-8") for s in batch[ID_FEATURE].numpy())
        if with_embeddings:
            chunks.append(batch[EMBEDDING_FEATURE].numpy())
    if not with_embeddings:
        return ids, None
    emb = np.concatenate(chunks) if chunks else np.zeros((0, dim or 0), np.float32)
    return ids, emb.astype(np.float32, copy=False)


def _read_parquet(paths: Sequence[str], with_embeddings: bool, dim: Optional[int]):
    import pyarrow.parquet as pq

    ids: List[str] = []
    chunks: List[np.ndarray] = []
    columns = [ID_FEATURE, EMBEDDING_FEATURE] if with_embeddings else [ID_FEATURE]
    for p in paths:
        if "://" in p:
            with _gfile().GFile(p, "rb") as f:
                table = pq.read_table(f, columns=columns)
        else:
            table = pq.read_table(p, columns=columns)
        ids.extend(table.column(ID_FEATURE).to_pylist())
        if with_embeddings and table.num_rows:
            col = table.column(EMBEDDING_FEATURE).combine_chunks()
            flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32)
            chunks.append(flat.reshape(table.num_rows, -1))
    if not with_embeddings:
        return ids, None
    emb = np.concatenate(chunks) if chunks else np.zeros((0, dim or 0), np.float32)
    return ids, emb


def _pick_format(output_dir: str, fmt: Optional[str]) -> str:
    if fmt is not None:
        return fmt
    manifest = read_manifest(output_dir)
    if manifest is not None:
        written = manifest.get("files", {})
        return "tfrecord" if "tfrecord" in written else next(iter(written))
    gfile = _gfile()
    for f in FORMATS:
        if gfile.glob(_join(output_dir, f"{EMBEDDINGS_PREFIX}-*{SUFFIXES[f]}")):
            return f
    raise FileNotFoundError(f"{output_dir}: no embedding shards (is it an embed-corpus output?)")


def read_embeddings(output_dir: str, fmt: Optional[str] = None, sort: bool = True,
                    check_unique: bool = True) -> Tuple[List[str], np.ndarray]:
    """Reads an embed-corpus output: `(ids, float32 [n, hidden])`.

    Args:
      output_dir: the OUTPUT directory of `tfkosent embed-corpus`.
      fmt: "tfrecord" or "parquet"; default: what the run wrote (TFRecord first).
      sort: order rows by file, then line number (otherwise shard order).
      check_unique: raise if an id occurs twice (it never should).
    """
    fmt = _pick_format(output_dir, fmt)
    manifest = read_manifest(output_dir)
    dim = manifest.get("hidden_size") if manifest else None
    paths = shard_files(output_dir, fmt)
    reader = _read_tfrecord if fmt == "tfrecord" else _read_parquet
    ids, emb = reader(paths, True, dim)
    if check_unique and len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i in ids:
            if i in seen:
                dup = i
                break
            seen.add(i)
        raise ValueError(f"{output_dir}: id {dup!r} occurs more than once")
    if sort and ids:
        order = sorted(range(len(ids)), key=lambda k: id_sort_key(ids[k]))
        ids = [ids[k] for k in order]
        emb = emb[np.asarray(order)]
    return ids, emb


def read_ids(output_dir: str, fmt: Optional[str] = None) -> List[str]:
    """Only the ids, in shard order (cheap: the embeddings are not parsed)."""
    fmt = _pick_format(output_dir, fmt)
    reader = _read_tfrecord if fmt == "tfrecord" else _read_parquet
    return reader(shard_files(output_dir, fmt), False, None)[0]


def read_ids_from_files(paths: Sequence[str], fmt: str) -> List[str]:
    """The ids in the given shard files of format `fmt`, in file order."""
    reader = _read_tfrecord if fmt == "tfrecord" else _read_parquet
    return reader(list(paths), False, None)[0]


def read_dead_letters(output_dir: str, sort: bool = True) -> List[Dict]:
    """The rejected lines, as dicts {id, file, line, reason, detail, text}."""
    path = _join(output_dir, DEAD_LETTER_NAME)
    gfile = _gfile()
    if not gfile.exists(path):
        raise FileNotFoundError(f"{path}: no dead-letter file (is it an embed-corpus output?)")
    with gfile.GFile(path, "rb") as f:
        # split on "\n" only: str.splitlines() would also split inside a text
        # field holding U+0085 or U+2028, which JSON leaves unescaped.
        records = [json.loads(line) for line in f.read().decode("utf-8").split("\n") if line.strip()]
    if sort:
        records.sort(key=lambda r: id_sort_key(r["id"]))
    return records
