"""MultipleNegativesRankingLoss: in-batch negatives for (anchor, positive) pairs.

Henderson et al. 2017, "Efficient Natural Language Response Suggestion for Smart
Reply" (arXiv:1705.00652); sentence-transformers' `MultipleNegativesRankingLoss`
(scale 20, i.e. temperature 0.05).  Trained here on paraphrase groups
(parakqc, stylekqc: adjacent members of a group form a pair) or any pair
dataset; members of the anchor's own group are masked out of its negatives.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict

import tensorflow as tf

from tfkosent.training.losses.core import Loss, in_batch_softmax_loss


@dataclasses.dataclass(frozen=True)
class MultipleNegativesRankingLoss(Loss):
    """Softmax over in-batch candidates; the pair's positive is the target.

    embeddings: float32 [batch, 2, hidden] (anchor, positive).
    labels["group"]: int32 [batch], paraphrase-group id of each pair.
    scale: cosine multiplier (20 = temperature 0.05).
    """

    scale: float = 20.0

    within_batch: ClassVar[bool] = True
    input_kind: ClassVar[str] = "pairs"
    views: ClassVar = ("anchor", "positive")
    label_keys: ClassVar = ("group",)

    def _problems(self):
        yield from self._positive("scale")

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        return in_batch_softmax_loss(embeddings[:, 0], embeddings[:, 1], scale=self.scale,
                                     groups=labels["group"])
