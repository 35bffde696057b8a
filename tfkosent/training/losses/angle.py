"""AnglE: CoSENT's ranking term on an angle difference in complex space.

Li and Li 2023, "AnglE-optimized Text Embeddings" (arXiv:2309.12871); the
similarity is sentence-transformers' `pairwise_angle_sim` (from the AnglE
repository), its `AnglELoss` being CoSENT with that similarity. Each embedding
is read as a complex vector: its first half the real parts, its second half the
imaginary parts. Cosine saturates near +-1, where its gradient vanishes; the
angle of the complex quotient of the two vectors does not.

`cosine_weight` > 0 adds that much of CoSENT on the cosine (the paper trains
on a weighted sum of objectives); 0 (the default) is `AnglELoss` alone.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict

import tensorflow as tf

from tfkosent.training.losses.core import Loss, paired_cosine
from tfkosent.training.losses.cosent import ranking_loss


def paired_angle_similarity(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """float32 [n]: the AnglE similarity of row-aligned x [n, d] and y [n, d] (d even)."""
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.float32)
    a, b = tf.split(x, 2, axis=-1)      # real, imaginary parts of x
    c, d = tf.split(y, 2, axis=-1)      # real, imaginary parts of y
    # floored like l2_normalize's epsilon: a zero vector gives similarity 0, not NaN
    z = tf.maximum(tf.reduce_sum(c * c + d * d, axis=-1, keepdims=True), 1e-12)
    re = (a * c + b * d) / z
    im = (b * c - a * d) / z
    norm_x = tf.sqrt(tf.maximum(tf.reduce_sum(a * a + b * b, axis=-1, keepdims=True), 1e-12))
    norm_y = tf.sqrt(z)
    re = re * norm_y / norm_x
    im = im * norm_y / norm_x
    return tf.abs(tf.reduce_sum(re + im, axis=-1))


@dataclasses.dataclass(frozen=True)
class AnglELoss(Loss):
    """embeddings: float32 [batch, 2, hidden] (hidden even); labels["score"]: float32 [batch].

    scale: multiplies the similarities (20, as sentence-transformers' AnglELoss).
    cosine_weight: weight of an added CoSENT term on the cosines (0 = none).
    """

    scale: float = 20.0
    cosine_weight: float = 0.0

    within_batch: ClassVar[bool] = True
    input_kind: ClassVar[str] = "scored_pairs"
    views: ClassVar = ("sentence1", "sentence2")
    label_keys: ClassVar = ("score",)

    def _problems(self):
        yield from self._positive("scale")
        if self.cosine_weight < 0:
            yield "cosine_weight", f"must be >= 0, got {self.cosine_weight}"

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        u, v = embeddings[:, 0], embeddings[:, 1]
        loss = ranking_loss(paired_angle_similarity(u, v), labels["score"], self.scale)
        if self.cosine_weight:
            loss += self.cosine_weight * ranking_loss(paired_cosine(u, v), labels["score"], self.scale)
        return loss
