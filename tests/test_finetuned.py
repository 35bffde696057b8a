"""save_finetuned_model: an export's encoder tuned in a user's own tf_keras or Keras 3 model,
saved back as a model directory that SentenceEncoder.load (and so `tfkosent export`) reads."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401

from tfkosent.finetuned import save_finetuned_model
from tfkosent.sentence_encoder import SentenceEncoder

SENTENCES = ["나는 밥을 먹는다.", "고양이가 책을 읽는다", "우리는 공원에서 축구를 한다",
             "엄마가 커피를 마신다", "아이들이 공원에서 축구를 한다", "친구가 노래를 부른다"]


def _targets(model_dir):
    """Each sentence's target: another sentence's embedding (2 steps of 3 move the weights)."""
    return np.roll(SentenceEncoder.load(model_dir).encode(SENTENCES), 1, axis=0)


def _assert_holds(out, tuned, base_model_dir):
    """`out` embeds as the tuned model does, and not as the base model."""
    np.testing.assert_allclose(SentenceEncoder.load(out).encode(SENTENCES), tuned, atol=1e-5)
    assert np.abs(SentenceEncoder.load(base_model_dir).encode(SENTENCES) - tuned).max() > 1e-2


def test_tf_keras_hub_encoder_tuned_in_a_classifier(tiny_model_dir, tiny_export_dir, tmp_path):
    import tensorflow_hub as hub
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    preprocess = hub.KerasLayer(os.path.join(tiny_export_dir, "preprocess"))
    encoder = hub.KerasLayer(os.path.join(tiny_export_dir, "encoder"), trainable=True)
    text = tf_keras.Input(shape=(), dtype=tf.string)
    model = tf_keras.Model(text, tf_keras.layers.Dense(2)(encoder(preprocess(text))["pooled_output"]))
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = tf.constant(SENTENCES)
    model.fit(x, tf.constant([1, 0, 1, 0, 1, 0]), batch_size=3, epochs=1, verbose=0)
    tuned = tf.math.l2_normalize(encoder(preprocess(x))["pooled_output"], -1).numpy()

    out = save_finetuned_model(encoder, str(tmp_path / "tuned"), base_model=tiny_model_dir)
    _assert_holds(out, tuned, tiny_model_dir)
    metadata = json.load(open(os.path.join(out, "config.json")))["metadata"]
    assert metadata["trained"] is True and metadata["training"]["outside_tfkosent"] is True
    assert metadata["training"]["base_model"] == os.path.basename(tiny_model_dir)
    # The whole model (the Dense head is left out) and the model saved in SavedModel format hold
    # the same encoder.
    model.save(str(tmp_path / "saved_model"), include_optimizer=False)
    for source in (model, str(tmp_path / "saved_model")):
        save_finetuned_model(source, out, base_model=tiny_model_dir, overwrite=True)
        _assert_holds(out, tuned, tiny_model_dir)
    with pytest.raises(FileExistsError, match="already exists"):
        save_finetuned_model(encoder, out, base_model=tiny_model_dir)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a tfkosent model directory"):
        save_finetuned_model(encoder, str(foreign), base_model=tiny_model_dir, overwrite=True)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_tf_keras_hub_sentence_encoder(tiny_model_dir, tiny_export_dir, tmp_path):
    import tensorflow_hub as hub
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    layer = hub.KerasLayer(os.path.join(tiny_export_dir, "sentence_encoder", "1"), trainable=True,
                           output_key="embeddings")
    text = tf_keras.Input(shape=(), dtype=tf.string)
    model = tf_keras.Model(text, layer(text))
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2), loss=tf_keras.losses.CosineSimilarity())
    x = tf.constant(SENTENCES)
    model.fit(x, _targets(tiny_model_dir), batch_size=3, epochs=1, verbose=0)
    tuned = model(x, training=False).numpy()

    out = save_finetuned_model(layer, str(tmp_path / "tuned"), base_model=tiny_model_dir)
    _assert_holds(out, tuned, tiny_model_dir)


def test_keras3_fine_tunable_tfsm_layer(tiny_model_dir, tiny_export_dir, tmp_path):
    import keras

    from tfkosent.layers import FineTunableTFSMLayer

    keras.utils.set_random_seed(0)
    preprocess = FineTunableTFSMLayer(os.path.join(tiny_export_dir, "preprocess"),
                                      call_endpoint="serving_default")
    encoder = FineTunableTFSMLayer(os.path.join(tiny_export_dir, "encoder"), call_endpoint="serve",
                                   call_training_endpoint="serve_training", trainable=True)
    text = keras.Input(shape=(), dtype="string")
    model = keras.Model(text, keras.layers.UnitNormalization(axis=-1)(encoder(preprocess(text))["pooled_output"]))
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss=keras.losses.CosineSimilarity())
    x = tf.constant(SENTENCES)
    model.fit(x, _targets(tiny_model_dir), batch_size=3, epochs=1, verbose=0)
    tuned = model.predict(x, verbose=0)

    for source, name in ((encoder, "from_layer"), (model, "from_model")):
        out = save_finetuned_model(source, str(tmp_path / name), base_model=tiny_model_dir)
        _assert_holds(out, tuned, tiny_model_dir)


@pytest.mark.parametrize("shape, message", [
    (dict(hidden_size=48), r"\(of another shape: transformer_encoder/embedding_layer_norm/beta "
                           r"\(32,\) \(base \(48,\)\), .* and \d+ more\)"),
    (dict(num_layers=3), r"\(missing: transformer_encoder/layer_2/attention/key/bias, .* and \d+ more\)"),
    (dict(num_layers=1), r"\(extra: transformer_encoder/layer_1/attention/key/bias, .* and \d+ more\)"),
], ids=["hidden_size", "more_layers", "fewer_layers"])
def test_a_base_model_of_another_shape_names_the_variables(tiny_export_dir, tmp_path, shape, message):
    from tfkosent import testing

    base = testing.write_tiny_model(str(tmp_path / "other"), **shape)
    restored = tf.saved_model.load(os.path.join(tiny_export_dir, "encoder"))
    with pytest.raises(ValueError, match="the source's encoder variables do not match the encoder "
                                         f"of base_model {re.escape(base)} " + message):
        save_finetuned_model(restored, str(tmp_path / "out"), base_model=base)
    assert not os.path.exists(tmp_path / "out")


def test_sources_without_one_encoder_are_refused(tiny_model_dir, tiny_export_dir, tmp_path):
    import tf_keras

    out = str(tmp_path / "out")
    head = tf_keras.layers.Dense(2)
    head.build((None, 32))
    with pytest.raises(ValueError, match=r"the source holds no encoder variables \(none of its 2 "
                                         r"variables is named transformer_encoder/\.\.\.\)"):
        save_finetuned_model(head, out, base_model=tiny_model_dir)
    preprocess = tf.saved_model.load(os.path.join(tiny_export_dir, "preprocess"))
    with pytest.raises(ValueError, match="none of its 0 variables"):
        save_finetuned_model(preprocess, out, base_model=tiny_model_dir)
    with pytest.raises(TypeError, match="an iterable of variables, got int"):
        save_finetuned_model(3, out, base_model=tiny_model_dir)

    first, second = (tf.saved_model.load(os.path.join(tiny_export_dir, "encoder")) for _ in range(2))
    with pytest.raises(ValueError, match=r"the source holds two encoders' variables \(transformer_encoder/"
                                         r".* each appear more than once\): pass the layer"):
        save_finetuned_model(list(first.variables) + list(second.variables), out, base_model=tiny_model_dir)
    second.variables[0].assign(tf.fill(second.variables[0].shape, np.nan))
    with pytest.raises(ValueError, match=f"NaN or inf in {second.variables[0].name[:-2]}: the fine-tuning diverged"):
        save_finetuned_model(second, out, base_model=tiny_model_dir)
    assert not os.path.exists(out)
    # One encoder listed twice (a layer shared by both sides of a pair model) is one encoder: the
    # untuned export saves the base model's weights.
    save_finetuned_model(list(first.variables) * 2, out, base_model=tiny_model_dir)
    np.testing.assert_allclose(SentenceEncoder.load(out).encode(SENTENCES),
                               SentenceEncoder.load(tiny_model_dir).encode(SENTENCES), atol=1e-6)


@pytest.fixture(scope="module")
def same_shape_model_dir(tmp_path_factory):
    """Another tiny model of tiny_model_dir's shape (seed 0's sentences: the same vocabulary
    size) with unrelated weights (seed 1): names and shapes cannot tell the two apart."""
    from tfkosent import testing

    return testing.write_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny_other"), seed=1,
                                    sentences=testing.korean_sentences(400, 0))


def _assert_same_weights(model_dir, other_model_dir):
    with np.load(os.path.join(model_dir, "weights.npz")) as got, \
            np.load(os.path.join(other_model_dir, "weights.npz")) as expected:
        assert set(got.files) == set(expected.files)
        for name in expected.files:
            np.testing.assert_array_equal(got[name], expected[name])


def test_another_base_model_of_the_same_shape_is_refused_by_the_export_record(
        tiny_model_dir, tiny_export_dir, same_shape_model_dir, tmp_path):
    import keras
    import tensorflow_hub as hub

    from tfkosent.layers import FineTunableTFSMLayer

    out = str(tmp_path / "out")
    message = (rf"base_model {re.escape(same_shape_model_dir)} is not the model the source was "
               rf"exported from: {re.escape(os.path.join(tiny_export_dir, 'tfkosent_export.json'))} "
               rf"records weights.npz sha256 [0-9a-f]{{16}}\.\.\. \(model 'tiny_bert'\), base_model's "
               rf"weights.npz has sha256 [0-9a-f]{{16}}\.\.\.; .* or pass check_base=False")
    # An export's SavedModel paths, a Keras 3 model holding a layer loaded from one, a tf_keras
    # hub.KerasLayer: each leads to the export's tfkosent_export.json.
    keras_model = keras.Sequential([FineTunableTFSMLayer(os.path.join(tiny_export_dir, "encoder"),
                                                         call_endpoint="serve")])
    sources = [os.path.join(tiny_export_dir, "encoder"),
               os.path.join(tiny_export_dir, "sentence_encoder", "1"), keras_model,
               hub.KerasLayer(os.path.join(tiny_export_dir, "encoder"), trainable=True)]
    for source in sources:
        with pytest.raises(ValueError, match=message):
            save_finetuned_model(source, out, base_model=same_shape_model_dir)
    assert not os.path.exists(out)
    # check_base=False saves the weights as they are (here with the wrong base's tokenizer).
    save_finetuned_model(sources[-1], out, base_model=same_shape_model_dir, check_base=False)
    _assert_same_weights(out, tiny_model_dir)


def test_another_base_model_of_the_same_shape_is_refused_by_the_weights(
        tiny_model_dir, tiny_export_dir, same_shape_model_dir, tmp_path):
    import tensorflow_hub as hub

    out = str(tmp_path / "out")
    restored = tf.saved_model.load(os.path.join(tiny_export_dir, "encoder"))
    # Variables (and a restored object) say nothing of the export they came from.
    for source in (list(restored.variables), restored):
        with pytest.raises(ValueError, match=rf"base_model {re.escape(same_shape_model_dir)} does not "
                                             r"look like the model the source was fine-tuned from: "
                                             r"the median correlation of the source's weight "
                                             r"matrices with base_model's is -?0\.0\d\d, under 0\.1 "
                                             r".* or pass check_base=False"):
            save_finetuned_model(source, out, base_model=same_shape_model_dir)
    assert not os.path.exists(out)
    save_finetuned_model(list(restored.variables), out, base_model=same_shape_model_dir, check_base=False)
    _assert_same_weights(out, tiny_model_dir)

    # Weights moved beyond recognition: refused when only the weights can tell, saved when the
    # hub.KerasLayer's export records that its base is tiny_model_dir.
    layer = hub.KerasLayer(os.path.join(tiny_export_dir, "encoder"), trainable=True)
    rng = np.random.default_rng(0)
    for v in layer.variables:
        if len(v.shape) >= 2:
            v.assign(rng.normal(0.0, 0.02, v.shape).astype(np.float32))
    with pytest.raises(ValueError, match="does not look like the model the source was fine-tuned from"):
        save_finetuned_model(list(layer.variables), str(tmp_path / "moved"), base_model=tiny_model_dir)
    moved = save_finetuned_model(layer, str(tmp_path / "moved"), base_model=tiny_model_dir)
    (word_embeddings,) = [v for v in layer.variables
                          if v.name.startswith("transformer_encoder/word_embeddings/")]
    np.testing.assert_array_equal(np.load(os.path.join(moved, "weights.npz"))["embeddings/word_embeddings"],
                                  word_embeddings.numpy())
