"""Saving an encoder fine-tuned outside tfkosent as a tfkosent model directory.

An export's `encoder/` and `sentence_encoder/1/` train inside a user's own model
(`hub.KerasLayer(..., trainable=True)` in tf_keras, `FineTunableTFSMLayer` in Keras 3), but
`SentenceEncoder.load`, `tfkosent evaluate`, `tfkosent export` and TF Serving read a model
directory. The exported variables keep the names of the `TransformerEncoder` they were saved
from ("transformer_encoder/layer_0/attention/query/kernel", ...), so the tuned values go back
by name into an encoder built from the base model's config, and are saved with its tokenizer.

Names and shapes do not tell two models of one architecture apart, so before saving, the
source is checked to come from the base model (`save_finetuned_model`'s docstring says how):
another base of the same shape would silently pair the tuned weights with its tokenizer and
config, and every embedding would be wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from typing import Dict, List, Optional, Tuple

import numpy as np

from tfkosent.config import inherited_metadata
from tfkosent.model_dir import (CONFIG_FILE, EXPORT_INFO_FILE, load_model_dir, refuse_to_replace_foreign,
                                save_model_dir)

# The heuristic check (used when no export record can be compared): below this median
# correlation between the source's weight matrices and the base model's, the source is taken for
# another model. benchmarks/finetuned_base_check.py (BENCHMARKS.md section 10) measured: an
# unrelated model of the same shape gives |median| <= 0.03 (tiny test models, 5 seeds) and
# 0.000 (the default model against a random init of its shape); fine-tuning far harder than any
# real recipe keeps it >= 0.21 (tiny model, Adam 1e-2 for 160 steps) and 0.83 (default model,
# Adam 1e-2 for 16 steps; 1.000 at the usual 2e-5).
MIN_BASE_CORRELATION = 0.1


def save_finetuned_model(source, output_dir: str, base_model: str = "default", *,
                         overwrite: bool = False, check_base: bool = True) -> str:
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

    Names and shapes cannot tell the right base model from another of the same architecture
    (same vocabulary size, layers and width), whose tokenizer and config would then be saved
    with these weights: every embedding wrong, and no error anywhere. So with `check_base=True`
    (the default) ValueError is raised, and nothing saved, when `source` is found not to come
    from `base_model`:

    - exactly, when the export it was loaded from can be found: `source` is the path of an
      export's `encoder/` or `sentence_encoder/<version>/`, or a `hub.KerasLayer` or
      (FineTunable)`TFSMLayer` loaded from one (directly, or as a layer of the model passed).
      That export's `tfkosent_export.json` records the sha256 of the weights.npz it was made
      from; it must equal base_model's (a copy of the base model directory has the same; the
      same weights re-saved do not, as the file's bytes differ);
    - otherwise (variables, an object restored by `tf.saved_model.load`, a SavedModel saved
      from the tuned model), by the weights: fine-tuning moves weights, but each weight matrix
      stays correlated with the base's, while two models that were trained (or initialized)
      separately are uncorrelated. The median over the encoder's weight matrices of the
      correlation between the source's values and base_model's must be at least
      `MIN_BASE_CORRELATION` (0.1). benchmarks/finetuned_base_check.py measured about 0
      (|median| <= 0.03) for unrelated models of the same shape, and >= 0.21 after fine-tuning
      a tiny random model at Adam 1e-2 for 160 steps (0.83 for the default model at 1e-2, 1.000
      at 2e-5). The distance ||tuned - base|| / ||base|| would not do: Adam at 1e-2 moves the
      tiny models' weights (initialized with std 0.02) by 1.8x their norm in 8 steps, more than
      an unrelated model's 1.45x. This check cannot tell apart two models fine-tuned from one
      parent (their weights stay correlated); only the export record can.

    `check_base=False` skips both checks: for weights tuned so hard (or so long) that they no
    longer correlate with their base, or a base model re-saved since the export.

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
    base = export_source(files)
    if check_base:
        _check_base(source, tuned, {name: v.numpy() for name, v in expected.items()}, files.path,
                    base["weights_sha256"])
    for name, variable in expected.items():
        variable.assign(tuned[name])

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


def _check_base(source, tuned: Dict[str, np.ndarray], base: Dict[str, np.ndarray],
                base_path: str, base_sha256: str) -> None:
    """ValueError when `source` (holding the weights `tuned`) was not fine-tuned from the model
    directory `base_path` (weights `base`, weights.npz's sha256 `base_sha256`)."""
    skip = "or pass check_base=False to save anyway"
    records = _export_records(source)
    # The export record is exact, so when there is one the weights are not looked at: a digest
    # that matches is the base model, however far the fine-tuning went.
    for info_path, info in records:
        if info["weights_sha256"] != base_sha256:
            raise ValueError(
                f"base_model {base_path} is not the model the source was exported from: "
                f"{info_path} records weights.npz sha256 {info['weights_sha256'][:16]}... (model "
                f"{info.get('source')!r}), base_model's weights.npz has sha256 "
                f"{base_sha256[:16]}...; saving would pair the tuned weights with another "
                f"model's tokenizer and config. Pass the model directory that export was made "
                f"from as base_model, {skip}")
    if records:
        return
    correlation = _median_correlation(tuned, base)
    if correlation is not None and correlation < MIN_BASE_CORRELATION:
        raise ValueError(
            f"base_model {base_path} does not look like the model the source was fine-tuned "
            f"from: the median correlation of the source's weight matrices with base_model's is "
            f"{correlation:.3f}, under {MIN_BASE_CORRELATION} (fine-tuning keeps it well above; "
            f"a different model of the same shape gives about 0), and saving would pair the "
            f"tuned weights with another model's tokenizer and config. Pass the model directory "
            f"the export was made from as base_model, {skip}")


def _median_correlation(tuned: Dict[str, np.ndarray], base: Dict[str, np.ndarray]) -> Optional[float]:
    """The median over `base`'s weight matrices (2 or more dimensions) of the Pearson correlation
    between their values and `tuned`'s; None when there is none to compare.

    Correlation, not the distance ||tuned - base|| / ||base||: fine-tuning adds to the base's
    values, which stay visible after Adam has moved small (std 0.02) weights by several times
    their norm, while such a distance passes an unrelated model's (BENCHMARKS.md section 10).
    The median, so that a few matrices barely trained (unused positions) or tuned the most
    decide nothing."""
    correlations = []
    for name, b in base.items():
        # Biases and LayerNorm scales start as zeros and ones in every model: only matrices
        # (kernels, embeddings), randomly initialized, tell models apart.
        if b.ndim < 2:
            continue
        t = tuned[name].ravel().astype(np.float32)
        b = b.ravel().astype(np.float32)
        t = t - t.mean(dtype=np.float64)
        b = b - b.mean(dtype=np.float64)
        norms = float(np.linalg.norm(t)) * float(np.linalg.norm(b))
        if norms > 0:
            correlations.append(float(np.dot(t, b)) / norms)
    return float(np.median(correlations)) if correlations else None


def _export_records(source) -> List[Tuple[str, dict]]:
    """[(path, contents)] of the tfkosent_export.json of each export `source` was loaded from,
    where that can be found: `source` is the path of an export's SavedModel, or a layer loaded
    from one, or a model holding such layers."""
    paths = []
    if isinstance(source, (str, os.PathLike)):
        paths.append(os.fspath(source))
    else:
        stack, seen = [source], set()
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            path = _loaded_from(obj)
            if path is not None:
                paths.append(path)
            layers = getattr(obj, "layers", None)  # a Keras model's (nested models recurse)
            if isinstance(layers, (list, tuple)):
                stack.extend(layers)
    records = {}
    for path in paths:
        record = _export_record(path)
        if record is not None:
            records.setdefault(record[0], record[1])
    return list(records.items())


def _loaded_from(layer) -> Optional[str]:
    """The SavedModel path a Keras layer was loaded from, or None."""
    import keras

    if isinstance(layer, keras.layers.TFSMLayer):  # FineTunableTFSMLayer too; Keras 3 sets .filepath
        path = getattr(layer, "filepath", None)
    elif type(layer).__module__.startswith("tensorflow_hub"):
        # hub.KerasLayer: its config's "handle" (a path or URL; get_config raises when the
        # handle is a loaded object, not a string)
        try:
            path = layer.get_config().get("handle")
        except Exception:  # noqa: BLE001 (any failure means: no handle to follow)
            path = None
    else:
        return None
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None


def _export_record(path: str) -> Optional[Tuple[str, dict]]:
    """(path, contents) of the tfkosent_export.json of the export whose `encoder/` or
    `sentence_encoder/<version>/` is `path`, or None when `path` is not one or the file is
    missing, unreadable or records no weights digest (then the weights are compared instead)."""
    import tensorflow as tf

    url = "://" in path
    paths = posixpath if url else os.path
    path = path.rstrip("/") if url else os.path.normpath(os.path.abspath(path))
    name, parent = paths.basename(path), paths.dirname(path)
    if name == "encoder":
        root = parent
    elif name.isdigit() and paths.basename(parent) == "sentence_encoder":
        root = paths.dirname(parent)
    else:
        return None
    info_path = paths.join(root, EXPORT_INFO_FILE)
    try:
        with tf.io.gfile.GFile(info_path, "r") as f:
            info = json.loads(f.read())
    except (tf.errors.OpError, OSError, ValueError):
        return None
    if (not isinstance(info, dict) or info.get("format") != "tfkosent-export"
            or not isinstance(info.get("weights_sha256"), str)):
        return None
    return info_path, info


def _few(names: List[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")
