"""What every loss shares: the `Loss` base class and cosine / in-batch-softmax helpers."""

from __future__ import annotations

from typing import ClassVar, Dict, Optional, Tuple

import tensorflow as tf

# Masked logits get this offset: exp() underflows to exactly 0 in float32.
_MASK_OFFSET = 1e9


class Loss:
    """Base class of the training objectives.

    Subclasses are frozen dataclasses and set:
      input_kind:  the example kind they train on, one of
                   `tfkosent.training.data.KINDS` ("sentences", "pairs",
                   "triplets", "scored_pairs");
      views:       the text columns encoded per example, in order (a column may
                   repeat: unsupervised SimCSE encodes "text" twice);
      label_keys:  the label columns they read;
      requires_teacher: whether the task needs a teacher model directory;
                   the "teacher" label (cached teacher embeddings) is
                   attached to the examples unless `online_teacher`;
      online_teacher: the teacher encoder runs inside the training step and
                   the trainer calls `loss.distill(...)` (distill_hidden);
      pair_scorer: a cross-encoder loss, called with the logits float32
                   [batch] of the packed (sentence1, sentence2) pairs;
      within_batch: the loss compares the examples of a (per-replica) batch with
                   each other (in-batch negatives, pair rankings): it is exactly 0
                   for a batch of 1, so the trainer refuses that.
    """

    input_kind: ClassVar[str]
    views: ClassVar[Tuple[str, ...]]
    label_keys: ClassVar[Tuple[str, ...]] = ()
    requires_teacher: ClassVar[bool] = False
    online_teacher: ClassVar[bool] = False
    pair_scorer: ClassVar[bool] = False  # cross-encoder loss: called with logits [batch]
    within_batch: ClassVar[bool] = False

    def __post_init__(self):
        # A loss with a bad parameter is never built: a temperature of 0 divided by zero in the
        # first step, a negative scale trained the model away from the labels.
        from tfkosent.config import FieldError
        for field, message in self._problems():
            raise FieldError(type(self).__name__, field, message)

    def _problems(self):
        """(field or None, message) for each bad parameter; none by default."""
        return ()

    def _positive(self, *names):
        for name in names:
            value = getattr(self, name)
            if not value > 0:
                yield name, f"must be positive, got {value}"

    def __call__(self, embeddings: tf.Tensor, labels: Dict[str, tf.Tensor]) -> tf.Tensor:
        """embeddings float32 [batch, len(views), hidden] (the `views` in order), labels
        {key: tensor [batch, ...]} with the `label_keys` -> float32 scalar."""
        raise NotImplementedError


def l2_normalize(x: tf.Tensor) -> tf.Tensor:
    """Unit vectors along the last axis, computed in float32."""
    return tf.math.l2_normalize(tf.cast(x, tf.float32), axis=-1)


def cosine_matrix(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Cosine similarities float32 [n, m] of rows a [n, d] and b [m, d]."""
    return tf.matmul(l2_normalize(a), l2_normalize(b), transpose_b=True)


def paired_cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Cosine similarity float32 [n] of row-aligned a [n, d] and b [n, d]."""
    return tf.reduce_sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def in_batch_softmax_loss(anchors: tf.Tensor, positives: tf.Tensor,
                          negatives: Optional[tf.Tensor] = None, scale: float = 20.0,
                          groups: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Cross-entropy of finding each anchor's positive among all in-batch candidates.

    anchors, positives: float [n, d]; row i of `positives` is anchor i's target and
      every other row is a negative for it.
    negatives: optional float [n, d] hard negatives, candidates for every anchor.
    scale: multiplies the cosine similarities (1 / temperature).
    groups: optional int [n]; positives j != i with groups[j] == groups[i] are
      masked out (they are paraphrases of anchor i, not negatives).
    Returns the mean over anchors, float32 scalar.
    """
    logits = cosine_matrix(anchors, positives) * scale                  # [n, n]
    if groups is not None:
        n = tf.shape(groups)[0]
        same = tf.equal(groups[:, tf.newaxis], groups[tf.newaxis, :])
        same = tf.logical_and(same, tf.logical_not(tf.eye(n, dtype=tf.bool)))
        logits -= tf.cast(same, tf.float32) * _MASK_OFFSET
    if negatives is not None:
        logits = tf.concat([logits, cosine_matrix(anchors, negatives) * scale], axis=1)  # [n, 2n]
    targets = tf.range(tf.shape(anchors)[0])
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
