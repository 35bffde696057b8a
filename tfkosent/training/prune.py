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
  residual stream.  On a trained model it keeps far more of the model: cut from 1,536 to 1,024
  neurons per layer by activations on 4,000 STS-train sentences, session 19's default model
  (83.96 KorSTS dev) scored 82.59, against 81.89 by weights; its distilled student before
  CoSENT (83.56) scored 82.22 (session 20, TRAINING.md "A narrower FFN").

A pruned model is an ordinary model directory (config `encoder.intermediate_size` = the kept
width); distillation from the teacher and a CoSENT epoch then recover most of what was lost.

    tfkosent prune-ffn MODEL OUT --intermediate-size 1024 [--by activations] \\
        [--sources korsts-train,klue-sts-train] [--limit 4000] --data-dir ../shared/data
"""

from __future__ import annotations

import dataclasses
import random
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from tfkosent.config import ModelConfig, inherited_metadata
from tfkosent.model_dir import ModelFiles, load_model_dir, save_model_dir

# Sentences the activation statistics come from: STS training sentences (never an evaluation set).
DEFAULT_SOURCES = ("korsts-train", "klue-sts-train")
DEFAULT_LIMIT = 4000


def ffn_weight_importance(weights: Dict[str, np.ndarray], num_layers: int) -> List[np.ndarray]:
    """Per layer, float64 [intermediate]: ||intermediate kernel column|| x ||output kernel row||."""
    return [np.linalg.norm(np.asarray(weights[f"layer_{i}/intermediate/kernel"], np.float64), axis=0)
            * np.linalg.norm(np.asarray(weights[f"layer_{i}/output/kernel"], np.float64), axis=1)
            for i in range(num_layers)]


def ffn_activation_importance(model_dir: Union[str, ModelFiles], sentences: Sequence[str],
                              batch_size: int = 64) -> List[np.ndarray]:
    """Per layer, float64 [intermediate]: mean over the real (unpadded) tokens of `sentences` of
    |GELU(x W_in + b)_j|, times ||W_out[j, :]||.  Runs the model's layers in eager mode
    (inference: no dropout), each once per batch (`_TransformerLayer.forward`).  `model_dir`:
    a model directory, or its `ModelFiles` already loaded (not read again)."""
    import tensorflow as tf
    from tfkosent.layers.packing import num_special_tokens
    from tfkosent.model_dir import is_model_dir
    from tfkosent.sentence_encoder import SentenceEncoder, validate_sentences

    sentences = validate_sentences(sentences)
    if not sentences:
        raise ValueError("ffn_activation_importance needs at least one sentence")
    if isinstance(model_dir, ModelFiles):
        files = model_dir
    elif is_model_dir(model_dir):
        files = load_model_dir(model_dir)
    else:   # an export holds SavedModels, not the Keras layers read here
        raise ValueError(f"{model_dir}: not a tfkosent model directory (config.json + weights.npz)")
    backend = SentenceEncoder._from_model_files(files)._backend
    encoder, config = backend.encoder, backend.encoder.config
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
            x, activation = layer.forward(x, mask)
            sums[i] += np.abs(np.asarray(activation, np.float64)[real]).sum(axis=0)
    return [sums[i] / tokens * np.linalg.norm(np.asarray(layer.output_dense.kernel, np.float64), axis=1)
            for i, layer in enumerate(encoder.transformer_layers)]


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


def check_intermediate_size(config: ModelConfig, intermediate_size, model_dir: str,
                            name: str = "intermediate_size") -> None:
    """ValueError naming `name` unless `intermediate_size` is an int narrower than the FFN of
    `model_dir` (whose config is `config`)."""
    width = config.encoder.intermediate_size
    if (isinstance(intermediate_size, bool) or not isinstance(intermediate_size, (int, np.integer))
            or not 0 < intermediate_size < width):
        raise ValueError(f"{name} must be in 1..{width - 1} (narrower than {model_dir}'s {width}), "
                         f"got {intermediate_size!r}")


def _loaded(model_dir: Union[str, ModelFiles]) -> ModelFiles:
    """`model_dir` when it is loaded already, else the model directory it names, loaded
    ("default": the default model)."""
    if isinstance(model_dir, ModelFiles):
        return model_dir
    from tfkosent.training.config import resolve_model_path
    return load_model_dir(resolve_model_path(model_dir))


def prune_model_ffn(model_dir: Union[str, ModelFiles], out_dir: str, intermediate_size: int,
                    by: str = "activations", sentences: Optional[Sequence[str]] = None,
                    overwrite: bool = False, sources: Sequence[str] = ()) -> str:
    """Writes `model_dir` with every FFN cut to `intermediate_size` neurons; returns its path.

    model_dir: a model directory ("default": the default model), or its `ModelFiles` already
    loaded (read no more).  by: "activations" (needs `sentences`) or "weights".  The config's
    metadata records the width before, the criterion and how many sentences measured it.
    """
    if by not in ("activations", "weights"):
        raise ValueError(f"by must be 'activations' or 'weights', got {by!r}")
    files = _loaded(model_dir)
    encoder = files.config.encoder
    check_intermediate_size(files.config, intermediate_size, files.path)
    if by == "activations":
        if not sentences:
            raise ValueError("pruning by activations needs sentences")
        importance = ffn_activation_importance(files, sentences)
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


def prune_model_ffn_from_sources(model_dir: Union[str, ModelFiles], out_dir: str, intermediate_size: int,
                                 by: str = "activations", sources: Optional[Sequence[str]] = None,
                                 limit: int = DEFAULT_LIMIT, data_dir: Optional[str] = None,
                                 overwrite: bool = False) -> str:
    """`prune_model_ffn` with the activation statistics taken from `limit` sentences of the named
    datasets (default `DEFAULT_SOURCES`); what `tfkosent prune-ffn` and the pipeline's `prune_ffn`
    step run. `model_dir` as for `prune_model_ffn` (a path, or its loaded `ModelFiles`)."""
    if by != "activations":
        return prune_model_ffn(model_dir, out_dir, intermediate_size, by=by, overwrite=overwrite)
    if limit < 1:
        raise ValueError(f"limit must be a positive number of sentences, got {limit}")
    sources = list(sources or DEFAULT_SOURCES)
    return prune_model_ffn(model_dir, out_dir, intermediate_size, by=by,
                           sentences=importance_sentences(sources, limit, data_dir=data_dir),
                           overwrite=overwrite, sources=sources)


def prune_cli(args) -> int:
    """`tfkosent prune-ffn`: prints the pruned model's path."""
    # The model (its FFN width) before the sentences are loaded, maybe downloaded: a wrong
    # --intermediate-size or model is reported at once, naming the flag. Read once: the
    # loaded files are what is measured and pruned.
    files = _loaded(args.model)
    check_intermediate_size(files.config, args.intermediate_size, files.path, "--intermediate-size")
    print(prune_model_ffn_from_sources(files, args.out, args.intermediate_size, by=args.by,
                                       sources=args.sources, limit=args.limit, data_dir=args.data_dir,
                                       overwrite=args.overwrite))
    return 0
