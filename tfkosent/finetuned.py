"""Saving an encoder fine-tuned outside tfkosent as a tfkosent model directory.

An export's `encoder/` and `sentence_encoder/1/` train inside a user's own model
(`hub.KerasLayer(..., trainable=True)` in tf_keras, `FineTunableTFSMLayer` in Keras 3), but
`SentenceEncoder.load`, `tfkosent evaluate`, `tfkosent export` and TF Serving read a model
directory. The exported variables keep the names of the `TransformerEncoder` they were saved
from ("transformer_encoder/layer_0/attention/query/kernel", ...), so the tuned values go back
by name into an encoder built from the base model's config, and are saved with its tokenizer.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List

import numpy as np

from tfkosent.config import inherited_metadata
from tfkosent.model_dir import CONFIG_FILE, load_model_dir, refuse_to_replace_foreign, save_model_dir


def save_finetuned_model(source, output_dir: str, base_model: str = "default", *,
                         overwrite: bool = False) -> str:
    """Saves the encoder weights held by `source` as a model directory; returns its path.

    `source`: what holds the tuned variables of an export's `encoder/` or `sentence_encoder/1/`:
    a tf_keras `hub.KerasLayer`, a Keras 3 `FineTunableTFSMLayer` or `TFSMLayer`, an object
    restored by `tf.saved_model.load`, a whole Keras model (tf_keras or Keras 3) containing one
    of these (its other weights, such as a classification head, are left out), an iterable of
    variables, or the path of a SavedModel holding them (e.g. the tuned tf_keras model saved in
    that format). `base_model`: the model directory the export was made from ("default": the
    default model); its config and tokenizer are kept.

    The variables are matched to the base encoder's by name and must match it exactly: one of
    each of its weights (e.g. word embeddings float [vocab_size, hidden_size], each layer's
    query kernel [hidden_size, hidden_size]), each finite. ValueError names the variables that
    are missing, extra or of another shape (another base model), and is raised when `source`
    holds no encoder variables, or two encoders' (pass the one layer to save). The weights are
    written as float32 (weights.npz), atomically; `config.json`'s metadata records the base
    model and that the weights were tuned outside tfkosent. An existing `output_dir` is
    replaced only with `overwrite=True`, and only if it is a model directory.

        encoder = hub.KerasLayer("exports/my_model/encoder", trainable=True)
        ...  # a model around encoder(preprocess(text))["pooled_output"]; model.fit(...)
        save_finetuned_model(encoder, "models/my_tuned", base_model="models/my_model")
        SentenceEncoder.load("models/my_tuned").encode(["문장"])  # float32 [1, hidden_size]
    """
    from tfkosent.export import export_source

    files = load_model_dir(base_model)
    encoder = files.build_encoder()
    prefix = encoder.name + "/"
    # The encoder's weights; its other variables (dropout seed states) are not saved.
    expected = {v.path: v for v in encoder.variables if v.path.startswith(prefix)}
    tuned = _encoder_values(source, prefix)
    missing = sorted(set(expected) - set(tuned))
    extra = sorted(set(tuned) - set(expected))
    reshaped = [f"{name} {tuned[name].shape} (base {tuple(expected[name].shape)})"
                for name in sorted(set(tuned) & set(expected))
                if tuned[name].shape != tuple(expected[name].shape)]
    problems = [f"{what}: {_few(names)}" for what, names in
                (("missing", missing), ("extra", extra), ("of another shape", reshaped)) if names]
    if problems:
        raise ValueError(f"the source's encoder variables do not match the encoder of base_model "
                         f"{files.path} ({'; '.join(problems)}); base_model must be the model "
                         f"directory the export was made from")
    not_finite = sorted(name for name, value in tuned.items() if not np.isfinite(value).all())
    if not_finite:
        raise ValueError(f"NaN or inf in {_few(not_finite)}: the fine-tuning diverged; nothing saved")
    for name, variable in expected.items():
        variable.assign(tuned[name])

    base = export_source(files)
    metadata = inherited_metadata(files.config.metadata)
    metadata.update(trained=True, training={"outside_tfkosent": True, "base_model": base["source"],
                                            "base_weights_sha256": base["weights_sha256"]})
    if overwrite:
        refuse_to_replace_foreign(output_dir, CONFIG_FILE, "a tfkosent model directory")
    return save_model_dir(output_dir, dataclasses.replace(files.config, metadata=metadata),
                          encoder.get_weight_dict(), sentencepiece_proto=files.sentencepiece_proto,
                          wordpiece_vocab=files.wordpiece_vocab, overwrite=overwrite)


def _encoder_values(source, prefix: str) -> Dict[str, np.ndarray]:
    """{name: float32 value} of the variables of `source` named `prefix...`, each once."""
    import tensorflow as tf

    from tfkosent.export import tf_variable

    if isinstance(source, (str, os.PathLike)):
        source = tf.saved_model.load(os.fspath(source))
    variables = getattr(source, "variables", source)  # Keras layers and models, restored objects
    try:
        # by identity: a layer used twice (a shared pair encoder) lists its variables twice
        variables = list({id(v): v for v in map(tf_variable, variables)}.values())
    except TypeError:
        raise TypeError(f"source must be a Keras layer or model, a restored SavedModel, its path "
                        f"or an iterable of variables, got {type(source).__name__}") from None
    by_name: Dict[str, List] = {}
    for v in variables:
        name = v.name.rsplit(":", 1)[0]
        if name.startswith(prefix):
            by_name.setdefault(name, []).append(v)
    if not by_name:
        raise ValueError(f"the source holds no encoder variables (none of its {len(variables)} "
                         f"variables is named {prefix}...): pass the hub.KerasLayer or "
                         f"(FineTunable)TFSMLayer of an export's encoder/ or sentence_encoder/1, "
                         f"or the model holding it")
    twice = sorted(name for name, vs in by_name.items() if len(vs) > 1)
    if twice:
        raise ValueError(f"the source holds two encoders' variables ({_few(twice)} each appear "
                         f"more than once): pass the layer of the encoder to save")
    return {name: np.asarray(vs[0].numpy(), dtype=np.float32) for name, vs in by_name.items()}


def _few(names: List[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")
