"""Training toolkit: Korean sentence-embedding recipes in TensorFlow.

    tfkosent train tfkosent/configs/cosent_e5_korsts.yaml --data-dir DATA [--resume]

or from Python:

    >>> from tfkosent.training import load_config, train
    >>> result = train(load_config("recipe.yaml"), data_dir="DATA")

Modules:
    config         recipe schema (YAML / JSON), validated with file:line:key errors
    losses/        objectives: SimCSE (unsup./sup.), MultipleNegativesRanking,
                   CoSENT, cosine-MSE, embedding distillation, cross-encoder BCE / MSE
    data           sources -> examples -> tokens -> deterministic, length-bucketed tf.data epochs
    multitask      sequential and round-robin schedules
    optimization   AdamW (clipping the replica-summed gradient) + linear warmup / linear decay
    strategy       tf.distribute strategy selection (auto | mirrored | tpu | default)
    checkpointing  checkpoint contents, SIGTERM / SIGINT handling inside the step loop
    stop           SIGTERM / Ctrl-C anywhere else: unwind, print the resume hint (no TensorFlow)
    teacher_cache  sharded, resumable caches (teacher embeddings; shared `ShardedCache`)
    silver         silver-labelled pairs from a cross-encoder (Augmented SBERT), `tfkosent silver`
    student        DistilBERT-style student initialization from teacher layers
    reporting      metrics.jsonl, TensorBoard, batch log, loss-curve PNG
    trainer        the custom training loop (`Trainer`, `train`)
    synthetic      generated Korean STS / NLI / paraphrase / raw data for tests and smoke runs
    cli            `tfkosent train`

Importing this package does not import TensorFlow; the names below load on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "config", "load_config": "config", "parse_config": "config",
    "RecipeError": "config",
    "DataError": "data",
    "Trainer": "trainer", "train": "trainer", "TrainResult": "trainer",
    "NonFiniteLossError": "trainer", "TrainingInterrupted": "trainer",
    "init_student": "student", "default_student_layers": "student",
    "TeacherCache": "teacher_cache", "teacher_embeddings": "teacher_cache",
    "ShardedCache": "teacher_cache",
    "build_silver": "silver", "PairScoreCache": "silver", "SilverError": "silver",
    "WarmupLinearDecay": "optimization", "create_optimizer": "optimization",
    "create_strategy": "strategy",
    "LOSSES": "losses", "get_loss_class": "losses",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
