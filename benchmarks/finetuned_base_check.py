"""What `save_finetuned_model`'s weight check (tfkosent/finetuned.py) compares, measured: how
related an export's encoder stays to its base model after fine-tuning, against an unrelated
model of the same shape.

    python benchmarks/finetuned_base_check.py tiny      # the tests' tiny models (about 2 min here)
    python benchmarks/finetuned_base_check.py default   # the default model (about 1.5 min here)

For each pair it prints, over the encoder's weight matrices (2 or more dimensions), the median
of the Pearson correlation between the two models' values (what the check uses,
`finetuned._median_correlation`; "min" is the lowest matrix) and the median relative distance
||tuned - base|| / ||base||. "Unrelated" is `testing.write_tiny_model` with another seed and
seed 0's sentences (the same vocabulary size, so the same shapes), or for the default model a
random initialization of its config. Fine-tuning is hub.KerasLayer(encoder/, trainable=True) in
tf_keras with a 2-class Dense head (Adam, 64 generated sentences, batch 8: 8 steps an epoch),
and FineTunableTFSMLayer in Keras 3 pulled towards other sentences' embeddings (AdamW).
BENCHMARKS.md section 10 has the numbers.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def _weights(encoder, prefix):
    """{prefix + name within the encoder: value}, so encoders named _1, _2 ... compare."""
    own = encoder.name + "/"
    return {prefix + v.path[len(own):]: np.asarray(v.numpy(), np.float32)
            for v in encoder.variables if v.path.startswith(own)}


def _model_weights(model_dir, prefix="transformer_encoder/"):
    from tfkosent.model_dir import load_model_dir
    return _weights(load_model_dir(model_dir).build_encoder(), prefix)


def _row(label, tuned, base):
    from tfkosent.finetuned import _median_correlation

    corr = [np.corrcoef(tuned[k].ravel(), b.ravel())[0, 1] for k, b in base.items() if b.ndim >= 2]
    rel = [np.linalg.norm(tuned[k] - b) / np.linalg.norm(b) for k, b in base.items() if b.ndim >= 2]
    print(f"  {label:<44} correlation median {_median_correlation(tuned, base):6.3f} "
          f"(min {min(corr):6.3f})   relative distance median {np.median(rel):6.3f}", flush=True)


def _tune_tf_keras(export_dir, lr, epochs, sentences):
    import tensorflow as tf
    import tensorflow_hub as hub
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    preprocess = hub.KerasLayer(os.path.join(export_dir, "preprocess"))
    encoder = hub.KerasLayer(os.path.join(export_dir, "encoder"), trainable=True)
    text = tf_keras.Input(shape=(), dtype=tf.string)
    model = tf_keras.Model(text, tf_keras.layers.Dense(2)(encoder(preprocess(text))["pooled_output"]))
    model.compile(optimizer=tf_keras.optimizers.Adam(lr),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(tf.constant(sentences), tf.constant([i % 2 for i in range(len(sentences))]),
              batch_size=8, epochs=epochs, verbose=0)
    return encoder


def _tune_keras3(export_dir, lr, epochs, weight_decay, sentences):
    import keras
    import tensorflow as tf

    from tfkosent.layers import FineTunableTFSMLayer

    keras.utils.set_random_seed(0)
    preprocess = FineTunableTFSMLayer(os.path.join(export_dir, "preprocess"),
                                      call_endpoint="serving_default")
    encoder = FineTunableTFSMLayer(os.path.join(export_dir, "encoder"), call_endpoint="serve",
                                   call_training_endpoint="serve_training", trainable=True)
    text = keras.Input(shape=(), dtype="string")
    model = keras.Model(text, keras.layers.UnitNormalization(axis=-1)(encoder(preprocess(text))["pooled_output"]))
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=weight_decay),
                  loss=keras.losses.CosineSimilarity())
    x = tf.constant(sentences)
    model.fit(x, np.roll(model.predict(x, verbose=0), 1, axis=0), batch_size=8, epochs=epochs, verbose=0)
    return encoder


def main(which: str) -> int:
    import tensorflow_text  # noqa: F401

    from tfkosent import testing
    from tfkosent.export import export_model
    from tfkosent.finetuned import _encoder_values

    prefix = "transformer_encoder/"
    sentences = testing.korean_sentences(64, seed=7)
    tmp = tempfile.mkdtemp()
    if which == "tiny":
        base_dir = testing.write_tiny_model(os.path.join(tmp, "base"))
        base = _model_weights(base_dir)
        print("tiny model (seed 0) against an unrelated tiny model of the same shape:")
        for seed in range(1, 6):
            other = _model_weights(testing.write_tiny_model(
                os.path.join(tmp, f"seed{seed}"), seed=seed, sentences=testing.korean_sentences(400, 0)))
            _row(f"write_tiny_model seed {seed}", other, base)
        export_dir = export_model(base_dir, os.path.join(tmp, "export"))
        print("tiny model against itself fine-tuned (tf_keras hub.KerasLayer, Adam):")
        for lr in (1e-3, 1e-2, 1e-1):
            for epochs in (1, 5, 20):
                encoder = _tune_tf_keras(export_dir, lr, epochs, sentences)
                _row(f"lr {lr:g}, {epochs * 8} steps", _encoder_values(encoder, prefix), base)
        print("tiny model against itself fine-tuned (Keras 3 FineTunableTFSMLayer, AdamW):")
        for lr, epochs, wd in ((1e-2, 5, 0.01), (1e-2, 20, 0.01), (1e-2, 20, 0.1), (1e-1, 20, 0.01)):
            encoder = _tune_keras3(export_dir, lr, epochs, wd, sentences)
            _row(f"lr {lr:g}, weight decay {wd:g}, {epochs * 8} steps", _encoder_values(encoder, prefix), base)
    elif which == "default":
        import keras

        from tfkosent.layers.transformer import TransformerEncoder
        from tfkosent.model_dir import load_model_dir
        from tfkosent.sentence_encoder import DEFAULT_MODEL_DIR

        base = _model_weights(DEFAULT_MODEL_DIR)
        print("default model against a random initialization of its config:")
        for seed in (1, 2):
            keras.utils.set_random_seed(seed)
            encoder = TransformerEncoder(load_model_dir(DEFAULT_MODEL_DIR).config.encoder)
            encoder.build()
            _row(f"seed {seed}", _weights(encoder, prefix), base)
        export_dir = export_model(DEFAULT_MODEL_DIR, os.path.join(tmp, "export"))
        print("default model against itself fine-tuned (tf_keras hub.KerasLayer, Adam):")
        for lr in (2e-5, 1e-3, 1e-2):
            encoder = _tune_tf_keras(export_dir, lr, 2, sentences)
            _row(f"lr {lr:g}, 16 steps", _encoder_values(encoder, prefix), base)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
