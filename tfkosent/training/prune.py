"""Structured pruning of the feed-forward blocks (FFN) of an encoder.

Every transformer layer's FFN is `output(GELU(intermediate(x)))` with `intermediate_size`
neurons; dropping neuron j removes column j of `layer_i/intermediate/kernel`, entry j of its
bias and row j of `layer_i/output/kernel`.  At hidden 384 and intermediate 1536 the FFN is two
thirds of a layer's multiply-adds, so it is where a small encoder gets cheaper (Michel et al.
2019; the FFN pruning of CoFi, Xia et al. 2022, without learned masks).  Which neurons to keep:

* by weights (`ffn_weight_importance`): ||W_in[:, j]|| x ||W_out[j, :]||.  Needs no data;
  `init_student(intermediate_size=...)` uses it when a student is cut from a teacher.
* by activations (`ffn_activation_importance`): mean over the real tokens of some sentences
  of |GELU(x W_in + b)_j| x ||W_out[j, :]||, the average size of what neuron j adds to the
  residual stream.  On a trained model it keeps far more of the model: the distilled
  3-layer student (83.56 KorSTS dev) cut from 1,536 to 1,024 neurons per layer scored 82.21 by
  activations on 4,000 STS-train sentences (session 20, TRAINING.md "A narrower FFN"),
  and the shipped student_sts (83.96) 82.59, against 81.89 by weights.

A pruned model is an ordinary model directory (config `encoder.intermediate_size` = the kept
width); distillation from the teacher and a CoSENT epoch then recover most of what was lost.

    tfkosent prune-ffn MODEL OUT --intermediate-size 1024 [--by activations] \\
        [--sources korsts-train,klue-sts-train] [--limit 4000] --data-dir ../shared/data
"""

from __future__ import annotations

import dataclasses
import random
from typing import Dict, List, Optional, Sequence

import numpy as np

from tfkosent.config import ModelConfig, inherited_metadata
from tfkosent.model_dir import load_model_dir, save_model_dir

# Sentences the activation statistics come from: STS training sentences (never an evaluation set).
DEFAULT_SOURCES = ("korsts-train", "klue-sts-train")
DEFAULT_LIMIT = 4000


def ffn_weight_importance(weights: Dict[str, np.ndarray], num_layers: int) -> List[np.ndarray]:
    """Per layer, float64 [intermediate]: ||intermediate kernel column|| x ||output kernel row||."""
    return [np.linalg.norm(np.asarray(weights[f"layer_{i}/intermediate/kernel"], np.float64), axis=0)
            * np.linalg.norm(np.asarray(weights[f"layer_{i}/output/kernel"], np.float64), axis=1)
            for i in range(num_layers)]


def ffn_activation_importance(model_dir: str, sentences: Sequence[str], batch_size: int = 64
                              ) -> List[np.ndarray]:
    """Per layer, float64 [intermediate]: mean over the real (unpadded) tokens of `sentences` of
    |GELU(x W_in + b)_j|, times ||W_out[j, :]||.

    Runs the model's own layers in eager mode; the FFN input of each layer is recomputed from
    its attention sublayers exactly as `_TransformerLayer.call` does (inference: no dropout).
    """
    import tensorflow as tf
    from tfkosent.sentence_encoder import SentenceEncoder, validate_sentences

    from tfkosent.model_dir import is_model_dir

    sentences = validate_sentences(sentences)
    if not sentences:
        raise ValueError("ffn_activation_importance needs at least one sentence")
    if not is_model_dir(model_dir):   # an export holds SavedModels, not the Keras layers read here
        raise ValueError(f"{model_dir}: not a tfkosent model directory (config.json + weights.npz)")
    model = SentenceEncoder.load(model_dir)
    backend = getattr(model, "_backend")
    encoder, config = backend.encoder, backend.encoder.config
    from tfkosent.layers.packing import num_special_tokens
    specials = num_special_tokens(1, backend.packing)
    ids = backend.tokenize(tf.constant(sentences, tf.string))
    lengths = ids.row_lengths().numpy()
    order = np.argsort(-lengths, kind="stable")
    sums = [np.zeros(config.intermediate_size, np.float64) for _ in range(config.num_layers)]
    tokens = 0
    for start in range(0, len(sentences), batch_size):
        rows = order[start:start + batch_size]
        seq_length = int(min(lengths[rows[0]] + specials, backend.seq_length))
        packed = backend.preprocessor.bert_pack_inputs([tf.gather(ids, rows)], seq_length=seq_length)
        mask = tf.cast(packed["input_mask"], tf.int32)
        real = tf.reshape(mask, [-1]).numpy().astype(bool)
        tokens += int(real.sum())
        x = encoder.embed(packed)
        for i, layer in enumerate(encoder.transformer_layers):
            hidden = layer.attention_layer_norm(x + layer.attention(x, mask))
            activation = layer._act(layer.intermediate(tf.cast(hidden, layer.compute_dtype)))
            sums[i] += np.abs(np.asarray(activation, np.float64)[real]).sum(axis=0)
            x = layer(x, mask)
    weights = load_model_dir(model_dir).weights
    return [sums[i] / tokens * np.linalg.norm(np.asarray(weights[f"layer_{i}/output/kernel"],
                                                         np.float64), axis=1)
            for i in range(config.num_layers)]


def prune_ffn(weights: Dict[str, np.ndarray], num_layers: int, keep: int,
              importance: Optional[Sequence[np.ndarray]] = None) -> Dict[str, np.ndarray]:
    """The weights with each layer's FFN cut to its `keep` most important neurons (original
    order kept; ties: the lower index).

    weights: canonical names (layer_i/intermediate/{kernel [hidden, ffn], bias [ffn]},
    layer_i/output/kernel [ffn, hidden]); importance: per layer [ffn] (default
    `ffn_weight_importance`). Returns a new dict, other entries shared.
    """
    if importance is None:
        importance = ffn_weight_importance(weights, num_layers)
    out = dict(weights)
    for i in range(num_layers):
        w_in = np.asarray(weights[f"layer_{i}/intermediate/kernel"])
        w_out = np.asarray(weights[f"layer_{i}/output/kernel"])
        if not 0 < keep <= w_in.shape[1]:
            raise ValueError(f"intermediate_size must be in 1..{w_in.shape[1]} (the model's), got {keep}")
        score = np.asarray(importance[i])
        if score.shape != (w_in.shape[1],):
            raise ValueError(f"importance of layer {i} has shape {score.shape}, expected ({w_in.shape[1]},)")
        kept = np.sort(np.argsort(-score, kind="stable")[:keep])
        out[f"layer_{i}/intermediate/kernel"] = w_in[:, kept]
        out[f"layer_{i}/intermediate/bias"] = np.asarray(weights[f"layer_{i}/intermediate/bias"])[kept]
        out[f"layer_{i}/output/kernel"] = w_out[kept]
    return out


def importance_sentences(sources: Sequence[str] = DEFAULT_SOURCES, limit: int = DEFAULT_LIMIT,
                         data_dir: Optional[str] = None, seed: int = 0) -> List[str]:
    """`limit` distinct sentences of the named STS/NLI/raw datasets, shuffled with `seed`.
    Evaluation sets are refused (see `tfkosent.training.silver.collect_sentences`)."""
    from tfkosent.training.silver import collect_sentences
    sentences = sorted(collect_sentences(list(sources), data_dir=data_dir))
    random.Random(seed).shuffle(sentences)
    return sentences[:limit]


def prune_model_ffn(model_dir: str, out_dir: str, intermediate_size: int, by: str = "activations",
                    sentences: Optional[Sequence[str]] = None, overwrite: bool = False,
                    sources: Sequence[str] = ()) -> str:
    """Writes `model_dir` with every FFN cut to `intermediate_size` neurons; returns its path.

    by: "activations" (needs `sentences`) or "weights".  The config's metadata records the
    width before, the criterion and how many sentences measured it.
    """
    if by not in ("activations", "weights"):
        raise ValueError(f"by must be 'activations' or 'weights', got {by!r}")
    files = load_model_dir(model_dir)
    encoder = files.config.encoder
    if not 0 < intermediate_size < encoder.intermediate_size:
        raise ValueError(f"intermediate_size must be in 1..{encoder.intermediate_size - 1} "
                         f"(narrower than {model_dir}'s {encoder.intermediate_size}), got {intermediate_size}")
    if by == "activations":
        if not sentences:
            raise ValueError("pruning by activations needs sentences")
        importance = ffn_activation_importance(model_dir, sentences)
    else:
        importance = ffn_weight_importance(files.weights, encoder.num_layers)
    weights = prune_ffn(files.weights, encoder.num_layers, intermediate_size, importance)
    metadata = inherited_metadata(files.config.metadata)
    metadata.update(ffn_pruned_from=encoder.intermediate_size, pruned_model=files.path,
                    ffn_pruning={"by": by, "sentences": len(sentences or ()), "sources": list(sources)})
    config = ModelConfig(dataclasses.replace(encoder, intermediate_size=intermediate_size),
                         files.config.preprocess, metadata)
    return save_model_dir(out_dir, config, weights, sentencepiece_proto=files.sentencepiece_proto,
                          wordpiece_vocab=files.wordpiece_vocab, overwrite=overwrite)


def prune_cli(args) -> int:
    """`tfkosent prune-ffn`: prints the pruned model's path."""
    sources = list(args.sources or DEFAULT_SOURCES)
    sentences = None
    if args.by == "activations":
        if args.limit < 1:
            raise ValueError(f"--limit must be a positive number of sentences, got {args.limit}")
        sentences = importance_sentences(sources, args.limit, data_dir=args.data_dir)
    path = prune_model_ffn(args.model, args.out, args.intermediate_size, by=args.by, sentences=sentences,
                           overwrite=args.overwrite, sources=sources if sentences else ())
    print(path)
    return 0
