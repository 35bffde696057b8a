"""Cosine-MSE: regress the pair's cosine similarity onto its normalized gold score.

Reimers and Gurevych 2019, "Sentence-BERT" (arXiv:1908.10084), the STS
regression objective; sentence-transformers' `CosineSimilarityLoss`:
    loss = mean((cos(u, v) - score / max_score)^2)
KorSTS and KLUE-STS scores are 0-5, so `max_score` is 5.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict

import tensorflow as tf

from tfkosent.training.losses.core import Loss, paired_cosine


@dataclasses.dataclass(frozen=True)
class CosineMSELoss(Loss):
    """embeddings: float32 [batch, 2, hidden]; labels["score"]: float32 [batch] in [0, max_score]."""

    max_score: float = 5.0

    input_kind: ClassVar[str] = "scored_pairs"
    views: ClassVar = ("sentence1", "sentence2")
    label_keys: ClassVar = ("score",)

    def _problems(self):
        yield from self._positive("max_score")

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        cos = paired_cosine(embeddings[:, 0], embeddings[:, 1])
        target = tf.cast(labels["score"], tf.float32) / self.max_score
        return tf.reduce_mean(tf.square(cos - target))
