"""Pair-score objectives of cross-encoders (`model_type: cross_encoder`).

A cross-encoder reads (sentence1, sentence2) packed as one sequence and
outputs one logit per pair; its score is sigmoid(logit) in [0, 1] and the gold
STS score (0-5) is divided by 5 to match (`tfkosent.cross_encoder`):

    cross_bce   binary cross-entropy of the logit against score / 5 (soft
                labels; sentence-transformers' CrossEncoder default for STS)
    cross_mse   mean squared error of sigmoid(logit) against score / 5

These losses take the logits float32 [batch] instead of embeddings.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict

import tensorflow as tf

from tfkosent.training.losses.core import Loss


@dataclasses.dataclass(frozen=True)
class _PairScoreLoss(Loss):
    """logits: float32 [batch] (sentence1, sentence2 packed together).

    labels["score"]: float32 [batch], gold similarity on the 0..`max_score` scale.
    """

    max_score: float = 5.0

    input_kind: ClassVar[str] = "scored_pairs"
    views: ClassVar = ("sentence1", "sentence2")
    label_keys: ClassVar = ("score",)
    pair_scorer: ClassVar[bool] = True

    def _problems(self):
        yield from self._positive("max_score")

    def targets(self, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        """float32 [batch]: labels["score"] / max_score, clipped to [0, 1]."""
        return tf.clip_by_value(tf.cast(labels["score"], tf.float32) / self.max_score, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class CrossBCELoss(_PairScoreLoss):
    """Binary cross-entropy of sigmoid(logit) against score / max_score."""

    def __call__(self, logits: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        logits = tf.cast(logits, tf.float32)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(self.targets(labels), logits))


@dataclasses.dataclass(frozen=True)
class CrossMSELoss(_PairScoreLoss):
    """Mean squared error of sigmoid(logit) and score / max_score."""

    def __call__(self, logits: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        scores = tf.sigmoid(tf.cast(logits, tf.float32))
        return tf.reduce_mean(tf.square(scores - self.targets(labels)))
