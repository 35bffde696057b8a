"""Distillation from a teacher encoder: sentence embeddings, and hidden states layer by layer.

`distill_mse` (`EmbeddingMSELoss`): MSE between the student's and the teacher's
sentence embedding.  Reimers and Gurevych 2020, "Making Monolingual Sentence
Embeddings Multilingual using Knowledge Distillation" (arXiv:2004.09813),
sentence-transformers' `MSELoss`; with a student cut from the teacher's layers
this is the DistilBERT-style compression (Sanh et al. 2019, arXiv:1910.01108)
of a sentence encoder.  Teacher embeddings are computed once and cached on disk
(`tfkosent.training.teacher_cache`).

`distill_cosine` (`EmbeddingCosineLoss`): the same cached teacher embeddings,
matched in direction instead of in value: 1 - cos(student, teacher) per
sentence, plus the squared difference between the student's and the teacher's
in-batch cosine-similarity matrices (relational distillation, Park et al. 2019,
arXiv:1904.05068).  Cosine similarity is what the STS protocol scores, and the
norm of an embedding, which the MSE also spends capacity on, never enters it.

`distill_hidden` (`HiddenStateDistillationLoss`): the same embedding MSE plus
an MSE between each student layer's output and the output of the teacher layer
it stands for (TinyBERT's hidden-state loss, Jiao et al. 2020,
arXiv:1909.10351).  A sentence of n tokens gives n x layers targets instead of
one, so a student cut from the teacher's layers learns faster per sentence.
Token states cannot be cached compactly, so the teacher runs inside the
training step (`online_teacher`): one teacher forward per example and epoch,
which for a one-epoch run costs what building the embedding cache costs.  The
teacher must tokenize like the student (same vocabulary and packing); the
trainer checks that.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict, List, Optional, Sequence

import tensorflow as tf

from tfkosent.training.losses.core import Loss, cosine_matrix, paired_cosine


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


@dataclasses.dataclass(frozen=True)
class EmbeddingCosineLoss(Loss):
    """embeddings: float32 [batch, 1, hidden]; labels["teacher"]: float32 [batch, hidden].

    cosine_weight * mean_i (1 - cos(s_i, t_i))
      + similarity_weight * mean_{i != j} (cos(s_i, s_j) - cos(t_i, t_j))^2
      + mse_weight * mean (s - t)^2        (the distill_mse term; 0 by default)

    The similarity term compares the sentences of the (per-replica) batch with
    each other: the student learns the teacher's similarity structure, the
    quantity STS evaluation reads.  A batch of one sentence contributes 0 to it.
    """

    input_kind: ClassVar[str] = "sentences"
    views: ClassVar = ("text",)
    label_keys: ClassVar = ("teacher",)
    requires_teacher: ClassVar[bool] = True

    cosine_weight: float = 1.0
    similarity_weight: float = 1.0
    mse_weight: float = 0.0

    def _problems(self):
        """Recipe validation."""
        names = ("cosine_weight", "similarity_weight", "mse_weight")
        for name in names:
            if getattr(self, name) < 0:
                yield name, f"must be >= 0, got {getattr(self, name)}"
        if all(getattr(self, name) == 0 for name in names):
            yield None, "cosine_weight, similarity_weight and mse_weight are all 0: nothing to train on"

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        student = tf.cast(embeddings[:, 0], tf.float32)
        teacher = tf.cast(labels["teacher"], tf.float32)
        loss = tf.constant(0.0, tf.float32)
        if self.cosine_weight:
            loss += self.cosine_weight * tf.reduce_mean(1.0 - paired_cosine(student, teacher))
        if self.similarity_weight:
            n = tf.shape(student)[0]
            off_diagonal = 1.0 - tf.eye(n, dtype=tf.float32)
            diff = cosine_matrix(student, student) - cosine_matrix(teacher, teacher)   # [n, n]
            pairs = tf.maximum(tf.reduce_sum(off_diagonal), 1.0)
            loss += self.similarity_weight * tf.reduce_sum(tf.square(diff) * off_diagonal) / pairs
        if self.mse_weight:
            loss += self.mse_weight * tf.reduce_mean(tf.square(student - teacher))
        return loss


def masked_token_mse(student: tf.Tensor, teacher: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean over real tokens (mask 1) and hidden units of the squared difference.

    student, teacher: float [batch, seq, hidden]; mask: int or float [batch, seq].
    Returns float32 scalar (0 for a batch without real tokens).
    """
    m = tf.cast(mask, tf.float32)
    per_token = tf.reduce_mean(tf.square(tf.cast(student, tf.float32) - tf.cast(teacher, tf.float32)),
                               axis=-1)                                          # [batch, seq]
    return tf.reduce_sum(per_token * m) / tf.maximum(tf.reduce_sum(m), 1.0)


@dataclasses.dataclass(frozen=True)
class HiddenStateDistillationLoss(Loss):
    """Embedding MSE + per-layer hidden-state MSE against a teacher run in the step.

    layer_map: for each student layer, the 0-based teacher layer whose output it
      is trained to reproduce; default: the student's `metadata.teacher_layers`
      (written by `tfkosent.training.student.init_student`), else evenly spaced
      teacher layers ending with the last.
    embedding_weight, hidden_weight: weights of the pooled-output MSE and of the
      mean over layers of the token-state MSE.

    Called by the trainer as `distill(student_outputs, teacher_outputs, mask,
    layer_map)` with the encoders' output dicts (`pooled_output` float32
    [batch, hidden], `encoder_outputs` lists of float32 [batch, seq, hidden]) and
    the int32 input mask [batch, seq].
    """

    input_kind: ClassVar[str] = "sentences"
    views: ClassVar = ("text",)
    label_keys: ClassVar = ()
    requires_teacher: ClassVar[bool] = True
    online_teacher: ClassVar[bool] = True

    layer_map: Optional[List[int]] = None
    embedding_weight: float = 1.0
    hidden_weight: float = 1.0

    def _problems(self):
        """Recipe validation (the trainer checks layer_map against the two encoders)."""
        for name in ("embedding_weight", "hidden_weight"):
            if getattr(self, name) < 0:
                yield name, f"must be >= 0, got {getattr(self, name)}"
        if self.embedding_weight == 0 and self.hidden_weight == 0:
            yield None, "embedding_weight and hidden_weight are both 0: nothing to train on"

    def distill(self, student: Dict[str, tf.Tensor], teacher: Dict[str, tf.Tensor], mask: tf.Tensor,
                layer_map: Sequence[int]) -> tf.Tensor:
        """float32 scalar; `layer_map[i]` is the teacher layer of student layer i."""
        loss = tf.constant(0.0, tf.float32)
        if self.embedding_weight:
            diff = tf.cast(student["pooled_output"], tf.float32) - tf.cast(teacher["pooled_output"],
                                                                            tf.float32)
            loss += self.embedding_weight * tf.reduce_mean(tf.square(diff))
        if self.hidden_weight:
            hidden = [masked_token_mse(s, teacher["encoder_outputs"][t], mask)
                      for s, t in zip(student["encoder_outputs"], layer_map)]
            loss += self.hidden_weight * tf.add_n(hidden) / len(hidden)
        return loss

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        raise TypeError("distill_hidden runs its teacher inside the training step; the trainer "
                        "calls HiddenStateDistillationLoss.distill(...)")
