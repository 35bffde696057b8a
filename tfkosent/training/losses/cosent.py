"""CoSENT: a ranking loss on the cosine similarities of scored sentence pairs.

Su Jianlin 2022, "CoSENT: a more efficient sentence vector scheme than
Sentence-BERT" (kexue.fm/archives/8847); sentence-transformers' `CoSENTLoss`:

    loss = log(1 + sum over (i, j) with score_i > score_j of
                   exp(scale * (cos_j - cos_i)))

Only the order of the gold scores matters, so no score normalization is needed.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict

import tensorflow as tf

from tfkosent.training.losses.core import Loss, paired_cosine


@dataclasses.dataclass(frozen=True)
class CoSENTLoss(Loss):
    """embeddings: float32 [batch, 2, hidden] (sentence1, sentence2).

    labels["score"]: float32 [batch], gold similarity (any monotone scale).
    scale: multiplies the cosines (20, as in the paper).
    """

    scale: float = 20.0

    within_batch: ClassVar[bool] = True
    input_kind: ClassVar[str] = "scored_pairs"
    views: ClassVar = ("sentence1", "sentence2")
    label_keys: ClassVar = ("score",)

    def _problems(self):
        yield from self._positive("scale")

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        cos = paired_cosine(embeddings[:, 0], embeddings[:, 1])
        return ranking_loss(cos, labels["score"], self.scale)


def ranking_loss(similarity: tf.Tensor, score: tf.Tensor, scale: float) -> tf.Tensor:
    """CoSENT's ranking term, float32 scalar, for any pair similarity.

    similarity: float [n], one per pair (cosine for CoSENT, the angle
    similarity for AnglE); score: float [n] gold scores; both cast to float32. Sums over
    every (i, j) with score_i > score_j: log(1 + sum exp(scale * (similarity_j -
    similarity_i))); 0 (log 1) when no scores differ.
    """
    sim = tf.cast(similarity, tf.float32) * scale
    score = tf.cast(score, tf.float32)
    diff = sim[tf.newaxis, :] - sim[:, tf.newaxis]                          # [i, j] = sim_j - sim_i
    ordered = score[:, tf.newaxis] > score[tf.newaxis, :]                  # pair i above pair j
    diff = tf.where(ordered, diff, tf.fill(tf.shape(diff), -1e12))
    return tf.reduce_logsumexp(tf.concat([tf.zeros([1]), tf.reshape(diff, [-1])], axis=0))
