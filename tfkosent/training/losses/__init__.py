"""Training objectives, one module each, in the style of sentence-transformers' losses.

Every loss is a frozen dataclass (its fields are the recipe's `loss:` params)
and a callable

    loss(embeddings, labels) -> float32 scalar

embeddings: float32 [batch, views, hidden], the encoder's `pooled_output` of
    each example's `views` text columns (dropout on);
labels:     {name: tensor [batch, ...]} with the loss's `label_keys`.

The scalar is the loss of the (per-replica) batch: the mean over its examples,
except CoSENT and AnglE, which take a log-sum-exp over its ordered pairs (as
sentence-transformers does), so their value grows with the batch size.  The
trainer divides it by the number of replicas.  In-batch negatives are the
examples of the replica's own batch.

    name                     module                      trains on
    simcse_unsupervised      simcse.py                   sentences (each encoded twice)
    simcse_supervised        simcse.py                   NLI triplets
    multiple_negatives_ranking  multiple_negatives_ranking.py  pairs (paraphrase groups)
    cosent                   cosent.py                   scored pairs (STS)
    cosine_mse               cosine_mse.py               scored pairs (STS)
    angle                    angle.py                    scored pairs (STS)
    distill_mse              distillation.py             sentences + teacher embeddings
    distill_cosine           distillation.py             sentences + teacher embeddings
    distill_hidden           distillation.py             sentences, teacher run in the step
    cross_bce, cross_mse     cross.py                    scored pairs, cross-encoder logits

`distill_hidden` (`online_teacher = True`) is called as
loss.distill(student_outputs, teacher_outputs, input_mask, layer_map) instead:
it compares the encoders' token states, which are not cached.

Cross-encoder losses (`pair_scorer = True`, recipe `model_type: cross_encoder`)
are called as loss(logits float32 [batch], labels) instead.

Importing this package is cheap; `get_loss_class` imports TensorFlow.
"""

from __future__ import annotations

import importlib

LOSSES = {
    "simcse_unsupervised": "simcse:UnsupervisedSimCSELoss",
    "simcse_supervised": "simcse:SupervisedSimCSELoss",
    "multiple_negatives_ranking": "multiple_negatives_ranking:MultipleNegativesRankingLoss",
    "cosent": "cosent:CoSENTLoss",
    "cosine_mse": "cosine_mse:CosineMSELoss",
    "angle": "angle:AnglELoss",
    "distill_mse": "distillation:EmbeddingMSELoss",
    "distill_cosine": "distillation:EmbeddingCosineLoss",
    "distill_hidden": "distillation:HiddenStateDistillationLoss",
    "cross_bce": "cross:CrossBCELoss",
    "cross_mse": "cross:CrossMSELoss",
}


def get_loss_class(name: str):
    """The loss class registered as `name` (ValueError listing the names otherwise)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    module, cls = LOSSES[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


__all__ = ["LOSSES", "get_loss_class"]
