"""Carry a training run to another machine: its newest checkpoint in one compact file.

A run resumes from OUTPUT_DIR/checkpoints (`tfkosent train --resume`, or a
pipeline step run again).  When the machine goes away between sessions, `pack`
writes what a resume needs into one `.npz` file that can travel (or be
committed), and `unpack` rebuilds the run directory from it on the next
machine, so that the same command continues from the same step:

    tfkosent carry pack runs/default_model/distill_probe models/distill_probe.carry.npz
    # ... later, on a fresh machine, once the steps before it were run again:
    tfkosent carry unpack models/distill_probe.carry.npz runs/default_model/distill_probe
    tfkosent pipeline default-model --option probe_recipe=true --only distill_probe

What travels:
  * every tensor of the newest checkpoint (weights, AdamW moments and iteration
    count, dropout RNG states, data position, best dev score) and the object
    graph that names them, so `tf.train.Checkpoint.restore` matches them again;
  * the small files of the run: recipe.json, metrics.jsonl (the curves so far),
    best_model/ and student_init/ (model directories).
What does not: teacher caches (rebuilt from the teacher, which is fingerprinted),
TensorBoard logs, model/ and export/ (written when the run ends).

`exact=True` keeps every tensor as it is (a resume is then bit-identical to an
uninterrupted run, like a resume on the same machine).  The default is compact,
about half the size: model weights as float16 (relative error about 2^-11;
values under 6e-5, float16's subnormals, lose more) and large optimizer tensors
as bfloat16 (AdamW's second moments are squared gradients, often < 6e-8, which
float16 would flush to zero; bfloat16 keeps float32's exponent range with 8 bits
of mantissa).  A compact resume continues
from weights within float16 rounding of the checkpoint's, so it is close to,
not identical with, an uninterrupted run.
"""

from __future__ import annotations

import io
import json
import os
import time
from typing import Dict, List

import numpy as np

FORMAT = "tfkosent-carry"
VERSION = 1
# The run's files that travel (besides the checkpoint); directories are model directories.
RUN_FILES = ("recipe.json", "metrics.jsonl")
RUN_DIRS = ("best_model", "student_init")
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# Float tensors smaller than this stay float32 in compact mode (scalars, loss scale, ...).
_SMALL = 4096


class CarryError(ValueError):
    """A file that is not a carry file, or one this version cannot read."""


def _to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 -> the upper 16 bits (uint16), rounded to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)


def _from_bfloat16(u: np.ndarray) -> np.ndarray:
    return (u.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _encode(key: str, value: np.ndarray, exact: bool):
    """(stored array, encoding name) of one checkpoint tensor."""
    if exact or value.dtype != np.float32 or value.size < _SMALL or not np.all(np.isfinite(value)):
        return value, "raw"
    if key.startswith("model/") and float(np.max(np.abs(value))) < 6e4:
        return value.astype(np.float16), "float16"
    return _to_bfloat16(value), "bfloat16"


def _decode(stored: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "raw":
        return stored
    if encoding == "float16":
        return stored.astype(np.float32)
    if encoding == "bfloat16":
        return _from_bfloat16(stored)
    raise CarryError(f"unknown tensor encoding {encoding!r}")


def _checkpoint_dir(run_dir: str) -> str:
    from tfkosent.training.checkpointing import CHECKPOINT_DIR
    return os.path.join(run_dir, CHECKPOINT_DIR)


def _model_dir_files(path: str, exact: bool) -> Dict[str, bytes]:
    """The files of a model directory; weights re-saved as float16 unless `exact`."""
    from tfkosent.model_dir import WEIGHTS_FILE
    files = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        if name == WEIGHTS_FILE and not exact:
            with np.load(full) as weights:
                buffer = io.BytesIO()
                np.savez(buffer, **{k: weights[k].astype(np.float16)
                                    if weights[k].dtype == np.float32 else weights[k]
                                    for k in weights.files})
            files[name] = buffer.getvalue()
        else:
            with open(full, "rb") as f:
                files[name] = f.read()
    return files


def pack(run_dir: str, out_path: str, exact: bool = False) -> dict:
    """Writes `run_dir`'s newest checkpoint and small files into `out_path` (.npz),
    atomically.  Returns the carry's metadata (step, epoch, batch, sizes).
    FileNotFoundError if the run has no checkpoint."""
    import tensorflow as tf

    from tfkosent.data.datasets import atomic_write_bytes

    prefix = tf.train.latest_checkpoint(_checkpoint_dir(run_dir))
    if prefix is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint in {_checkpoint_dir(run_dir)} to carry")
    reader = tf.train.load_checkpoint(prefix)
    arrays: Dict[str, np.ndarray] = {}
    tensors: List[dict] = []
    for i, (key, dtype) in enumerate(sorted(reader.get_variable_to_dtype_map().items())):
        value = reader.get_tensor(key)
        if key == _OBJECT_GRAPH_KEY:
            arrays["object_graph"] = np.frombuffer(value, dtype=np.uint8)
            continue
        value = np.asarray(value)
        stored, encoding = _encode(key, value, exact)
        arrays[f"t{i}"] = stored
        tensors.append({"key": key, "array": f"t{i}", "dtype": dtype.name, "encoding": encoding})
    if "object_graph" not in arrays:
        raise CarryError(f"{prefix}: not an object-based checkpoint (no {_OBJECT_GRAPH_KEY})")
    files: Dict[str, bytes] = {}
    for name in RUN_FILES:
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                files[name] = f.read()
    for name in RUN_DIRS:
        path = os.path.join(run_dir, name)
        if os.path.isdir(path):
            files.update({f"{name}/{k}": v for k, v in _model_dir_files(path, exact).items()})
    for j, (name, data) in enumerate(sorted(files.items())):
        arrays[f"f{j}"] = np.frombuffer(data, dtype=np.uint8)
    position = {k: int(reader.get_tensor(f"{k}/.ATTRIBUTES/VARIABLE_VALUE"))
                for k in ("step", "epoch", "batch")
                if reader.has_tensor(f"{k}/.ATTRIBUTES/VARIABLE_VALUE")}
    meta = {"format": FORMAT, "version": VERSION, "exact": bool(exact),
            "source": os.path.abspath(run_dir), "checkpoint": os.path.basename(prefix),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tensorflow": tf.__version__, **position,
            "tensors": tensors, "files": {name: f"f{j}" for j, name in enumerate(sorted(files))}}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(out_path, buffer.getvalue())
    return {**{k: v for k, v in meta.items() if k not in ("tensors", "files")},
            "num_tensors": len(tensors), "files": sorted(files), "bytes": buffer.tell()}


def read_meta(path: str) -> dict:
    """The metadata of a carry file; CarryError if it is not one."""
    try:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
    except (OSError, KeyError, ValueError) as e:
        raise CarryError(f"{path}: not a tfkosent carry file ({e})") from e
    if meta.get("format") != FORMAT:
        raise CarryError(f"{path}: not a tfkosent carry file (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise CarryError(f"{path}: carry format version {meta.get('version')}, this tfkosent reads "
                         f"version {VERSION}")
    return meta


def unpack(path: str, run_dir: str) -> dict:
    """Rebuilds a run directory from a carry file: its files, then the checkpoint
    (written under its original name, `checkpoints/ckpt-STEP`), then the
    checkpoint index last, so an unpack killed midway leaves no checkpoint a
    resume would pick up.  FileExistsError if `run_dir` already holds one."""
    import tensorflow as tf

    from tfkosent.data.datasets import atomic_write_bytes

    meta = read_meta(path)
    ckpt_dir = _checkpoint_dir(run_dir)
    if tf.train.latest_checkpoint(ckpt_dir) is not None:
        raise FileExistsError(f"{run_dir} already holds a checkpoint "
                              f"({tf.train.latest_checkpoint(ckpt_dir)}); unpack into a new run "
                              f"directory, or move that one aside")
    os.makedirs(ckpt_dir, exist_ok=True)
    with np.load(path) as data:
        for name, array in meta["files"].items():
            if name.startswith("/") or ".." in name.split("/"):
                raise CarryError(f"{path}: unsafe file name {name!r}")
            atomic_write_bytes(os.path.join(run_dir, name), bytes(data[array]))
        names, tensors = [_OBJECT_GRAPH_KEY], [tf.constant(bytes(data["object_graph"]))]
        for t in meta["tensors"]:
            value = _decode(data[t["array"]], t["encoding"])
            names.append(t["key"])
            tensors.append(tf.constant(value, dtype=tf.as_dtype(t["dtype"])))
    prefix = os.path.join(ckpt_dir, meta["checkpoint"])
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=tensors)
    # The index a tf.train.CheckpointManager reads (text format of CheckpointState).
    index = (f'model_checkpoint_path: "{meta["checkpoint"]}"\n'
             f'all_model_checkpoint_paths: "{meta["checkpoint"]}"\n')
    atomic_write_bytes(os.path.join(ckpt_dir, "checkpoint"), index.encode("utf-8"))
    return {k: v for k, v in meta.items() if k not in ("tensors",)}


def carry_cli(args) -> int:
    """`tfkosent carry pack RUN_DIR FILE [--exact]` / `tfkosent carry unpack FILE RUN_DIR`;
    `pack-silver SILVER_DIR FILE` / `unpack-silver FILE OUT_DIR` (tfkosent.training.silver_pack)."""
    import sys
    from tfkosent.data.datasets import DownloadError
    from tfkosent.training.data import DataError
    from tfkosent.training.silver import SilverError
    from tfkosent.training.silver_pack import SilverPackError, pack_silver, unpack_silver
    try:
        if args.action == "pack-silver":
            info = pack_silver(args.silver_dir, args.file, data_dir=args.data_dir)
            print(f"packed {info['num_pairs']} silver pairs of {info['source']} (a pool of "
                  f"{info['num_sentences']} sentences from {', '.join(info['sources'])}) into "
                  f"{args.file}: {info['bytes'] / 2**20:.2f} MiB")
        elif args.action == "unpack-silver":
            info = unpack_silver(args.file, args.out_dir, data_dir=args.data_dir)
            print(f"unpacked {info['num_pairs']} silver pairs into {info['silver']} (sha256 "
                  f"{info['silver_sha256'][:12]}..., as packed)")
        elif args.action == "pack":
            info = pack(args.run_dir, args.file, exact=args.exact)
            print(f"packed {info['checkpoint']} of {args.run_dir} (step {info.get('step')}, epoch "
                  f"{info.get('epoch')}, batch {info.get('batch')}; {info['num_tensors']} tensors, "
                  f"{'exact' if info['exact'] else 'compact'}; files: {', '.join(info['files']) or '-'})"
                  f" into {args.file}: {info['bytes'] / 2**20:.1f} MiB")
        else:
            info = unpack(args.file, args.run_dir)
            print(f"unpacked {args.file} into {args.run_dir}: {info['checkpoint']} (step "
                  f"{info.get('step')}, {'exact' if info['exact'] else 'compact'}, made "
                  f"{info['created']} from {info['source']}); run the same training command "
                  f"(with --resume, or the pipeline step) to continue")
    except (CarryError, SilverPackError, SilverError, DataError, DownloadError, FileNotFoundError) as e:
        print(f"tfkosent carry: error: {e}", file=sys.stderr)
        return 2
    return 0
