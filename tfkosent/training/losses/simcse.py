"""SimCSE: contrastive sentence embeddings with in-batch negatives.

Gao, Yao and Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence
Embeddings" (EMNLP 2021, arXiv:2104.08821), temperature 0.05 for both variants:

  unsupervised: each sentence is encoded twice; the two dropout masks make the
    positive pair, the other sentences of the batch are negatives (Eq. 4).
  supervised: NLI triplets (premise, entailment, contradiction); the
    entailment hypothesis is the positive, every in-batch hypothesis a
    negative and the contradictions hard negatives (Eq. 5).

KoSimCSE (BM-K) trains the supervised variant on Korean NLI the same way.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict

import tensorflow as tf

from tfkosent.training.losses.core import Loss, in_batch_softmax_loss


@dataclasses.dataclass(frozen=True)
class UnsupervisedSimCSELoss(Loss):
    """embeddings: float32 [batch, 2, hidden], the same sentence under two dropout masks.

    labels["group"]: int32 [batch], id of the sentence text; repeats of one text
    in a batch are not used as each other's negatives.
    """

    temperature: float = 0.05

    within_batch: ClassVar[bool] = True
    input_kind: ClassVar[str] = "sentences"
    views: ClassVar = ("text", "text")
    label_keys: ClassVar = ("group",)

    def _problems(self):
        yield from self._positive("temperature")

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        return in_batch_softmax_loss(embeddings[:, 0], embeddings[:, 1],
                                     scale=1.0 / self.temperature, groups=labels["group"])


@dataclasses.dataclass(frozen=True)
class SupervisedSimCSELoss(Loss):
    """embeddings: float32 [batch, 3, hidden] (premise, entailment, contradiction).

    labels["group"]: int32 [batch], id of the premise; another triplet's
    entailment of the same premise is not used as a negative.
    """

    temperature: float = 0.05

    within_batch: ClassVar[bool] = True
    input_kind: ClassVar[str] = "triplets"
    views: ClassVar = ("anchor", "positive", "negative")
    label_keys: ClassVar = ("group",)

    def _problems(self):
        yield from self._positive("temperature")

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        return in_batch_softmax_loss(embeddings[:, 0], embeddings[:, 1], embeddings[:, 2],
                                     scale=1.0 / self.temperature, groups=labels["group"])
