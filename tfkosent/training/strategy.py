"""Choosing a tf.distribute.Strategy from a recipe's `strategy:` value.

    default    the default strategy (one device: the GPU if there is one, else the CPU)
    mirrored   MirroredStrategy over `devices`, or all GPUs, or (no GPU) all logical CPUs
    tpu        TPUStrategy; `tpu:` names the TPU ("local" on a TPU VM, a grpc:// address,
               or empty on Colab / GKE where the environment says)
    auto       tpu when the machine has one, mirrored with 2+ GPUs, else default
"""

from __future__ import annotations

import glob
import os
from typing import Optional, Sequence

import tensorflow as tf


# Device files of TPU chips on a TPU VM: /dev/accel* (v2-v4), /dev/vfio/<n> (v5e, v5p, v6e).
# (/dev/vfio/vfio is the VFIO control device that any VFIO host has, so only numbered groups count.)
TPU_DEVICE_FILES = ("/dev/accel*", "/dev/vfio/[0-9]*")


def local_tpu_devices() -> list:
    """The TPU chip device files of this machine (a TPU VM), [] elsewhere."""
    return [path for pattern in TPU_DEVICE_FILES for path in glob.glob(pattern)]


def tpu_present() -> bool:
    """Heuristic without network calls: TPU VM device files or TPU environment variables."""
    return bool(local_tpu_devices() or os.environ.get("TPU_NAME")
                or os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_WORKER_HOSTNAMES"))


def create_strategy(name: str = "auto", tpu: Optional[str] = None,
                    devices: Optional[Sequence[str]] = None) -> tf.distribute.Strategy:
    if name == "tpu" or (name == "auto" and (tpu or tpu_present())):
        target = tpu if tpu is not None else ("local" if local_tpu_devices() else "")
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=target)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "mirrored":
        chosen = list(devices or gpus or [d.name for d in tf.config.list_logical_devices("CPU")])
        return tf.distribute.MirroredStrategy(chosen)
    if name == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy(gpus)
    if name in ("auto", "default"):
        return tf.distribute.get_strategy()
    raise ValueError(f"unknown strategy {name!r}; expected auto, mirrored, tpu or default")


def is_tpu(strategy) -> bool:
    return isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))
