"""Embedding distillation: MSE between the student's and the teacher's sentence embedding.

Reimers and Gurevych 2020, "Making Monolingual Sentence Embeddings Multilingual
using Knowledge Distillation" (arXiv:2004.09813), sentence-transformers'
`MSELoss`; with a student cut from the teacher's layers this is the
DistilBERT-style compression (Sanh et al. 2019, arXiv:1910.01108) of a
sentence encoder.  Teacher embeddings are computed once and cached on disk
(`tfkosent.training.teacher_cache`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict

import tensorflow as tf

from tfkosent.training.losses.core import Loss


@dataclasses.dataclass(frozen=True)
class EmbeddingMSELoss(Loss):
    """embeddings: float32 [batch, 1, hidden]; labels["teacher"]: float32 [batch, hidden].

    The mean squared error over batch and hidden units of the raw (not
    normalized) pooled outputs, as in the paper.
    """

    input_kind: ClassVar[str] = "sentences"
    views: ClassVar = ("text",)
    label_keys: ClassVar = ("teacher",)
    requires_teacher: ClassVar[bool] = True

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        teacher = tf.cast(labels["teacher"], tf.float32)
        return tf.reduce_mean(tf.square(embeddings[:, 0] - teacher))
