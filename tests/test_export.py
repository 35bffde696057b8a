"""TF Hub-style export: preprocess/, encoder/, sentence_encoder/1/ and their consumers."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401

from tfkosent.data import sha256_file
from tfkosent.export import SERVING_INPUT, SERVING_OUTPUT, export_model
from tfkosent.sentence_encoder import SentenceEncoder

KOREAN_PAIRS = [("나는 밥을 먹는다.", "나는 사과를 먹는다."), ("고양이가 책을 읽는다", "강아지가 책을 본다"),
                ("우리는 공원에서 축구를 한다", "아이들이 공원에서 축구를 한다"), ("엄마가 커피를 마신다", "친구가 노래를 부른다")]
BAD_INPUTS = ["", "   \t ", "가나다 " * 4000, "😀🎉 emoji와 English, 漢字, Ελληνικά 섞인 문장"]


def test_export_layout(tiny_model_dir, tiny_export_dir):
    for sub in ("preprocess", "encoder", os.path.join("sentence_encoder", "1")):
        assert os.path.isfile(os.path.join(tiny_export_dir, sub, "saved_model.pb"))
    assert os.path.isfile(os.path.join(tiny_export_dir, "sentence_encoder", "1", "assets.extra",
                                       "tf_serving_warmup_requests"))
    info = json.load(open(os.path.join(tiny_export_dir, "tfkosent_export.json")))
    assert info["hidden_size"] == 32 and info["serving"]["input"] == SERVING_INPUT
    assert info["serving"]["max_batch_tokens"] is None   # no request limit unless asked for
    # The model is named by its directory and its weights' checksum, never by an absolute path
    # (an export is published; the path would carry the exporting machine's layout).
    assert info["source"] == os.path.basename(tiny_model_dir)
    assert info["weights_sha256"] == sha256_file(os.path.join(tiny_model_dir, "weights.npz"))
    assert os.sep not in json.dumps(info)
    # The SentencePiece model is inside the graph: no asset file travels.
    assert not os.listdir(os.path.join(tiny_export_dir, "preprocess", "assets")) \
        if os.path.isdir(os.path.join(tiny_export_dir, "preprocess", "assets")) else True


def test_export_json_carries_no_absolute_path_from_the_training_metadata(tiny_model_dir, tmp_path):
    """`tfkosent train` records its base model's absolute path (training.base_model); the
    published tfkosent_export.json keeps only the last component."""
    import shutil
    from tfkosent.export import export_model

    model = tmp_path / "tuned"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    config.setdefault("metadata", {})["training"] = {
        "base_model": "/home/someone/models/base_model", "step": 3,
        "tasks": [{"name": "sts", "data": ["/home/someone/data/pairs.tsv", "korsts-train"]}]}
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    export = export_model(str(model), str(tmp_path / "export"))
    info = json.load(open(os.path.join(export, "tfkosent_export.json"), encoding="utf-8"))
    training = info["metadata"]["training"]
    assert training["base_model"] == "base_model" and training["step"] == 3
    assert training["tasks"][0]["data"] == ["pairs.tsv", "korsts-train"]
    assert "/home/someone" not in json.dumps(info)


@pytest.mark.parametrize("sub", ["encoder", os.path.join("sentence_encoder", "1")])
def test_each_weight_is_stored_once(tiny_model_dir, tiny_export_dir, sub):
    """The checkpoint holds each weight once: tracking the Keras 3 layer beside its tf.Variables
    stored every value twice (a 21 MB model exported as 2 x 86 MB)."""
    model = SentenceEncoder.load(tiny_model_dir)
    num_weights = sum(int(np.prod(v.shape)) for v in model._backend.encoder.weights)
    stored = tf.train.list_variables(os.path.join(tiny_export_dir, sub, "variables", "variables"))
    values = sum(int(np.prod(shape)) for name, shape in stored if name != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert num_weights <= values < num_weights * 1.01, (values, num_weights)


def test_exported_and_in_memory_agree(tiny_model_dir, tiny_export_dir):
    sentences = [s for pair in KOREAN_PAIRS for s in pair] + BAD_INPUTS
    in_memory = SentenceEncoder.load(tiny_model_dir).encode(sentences, batch_size=3)
    exported = SentenceEncoder.load(tiny_export_dir).encode(sentences, batch_size=5)
    serving = tf.saved_model.load(os.path.join(tiny_export_dir, "sentence_encoder", "1"))
    served = serving.signatures["serving_default"](**{SERVING_INPUT: tf.constant(sentences)})
    np.testing.assert_allclose(exported, in_memory, atol=1e-5)
    np.testing.assert_allclose(served[SERVING_OUTPUT].numpy(), in_memory, atol=1e-5)
    # encoder/ served alone (docs/serving.md option 4): its slim signature returns only the
    # sentence vector, equal to serving_default's
    encoder = tf.saved_model.load(os.path.join(tiny_export_dir, "encoder"))
    preprocess = tf.saved_model.load(os.path.join(tiny_export_dir, "preprocess"))
    inputs = preprocess(tf.constant(sentences[:4]))
    slim = encoder.signatures["pooled_output"](**inputs)
    full = encoder.signatures["serving_default"](**inputs)
    assert list(slim) == ["pooled_output"] and "sequence_output" in full
    np.testing.assert_allclose(slim["pooled_output"].numpy(), full["pooled_output"].numpy(), atol=1e-6)


def _hub_string_model(export_dir, trainable=True):
    import tensorflow_hub as hub
    import tf_keras

    preprocess = hub.KerasLayer(os.path.join(export_dir, "preprocess"), name="preprocess")
    encoder = hub.KerasLayer(os.path.join(export_dir, "encoder"), trainable=trainable, name="encoder")
    text = tf_keras.Input(shape=(), dtype=tf.string)
    pooled = encoder(preprocess(text))["pooled_output"]
    embedding = tf_keras.layers.Lambda(lambda x: tf.nn.l2_normalize(x, axis=-1))(pooled)
    return tf_keras.Model(text, embedding), encoder


def test_hub_keras_layer_fine_tunes_one_step(tiny_export_dir):
    import tf_keras

    model, encoder = _hub_string_model(tiny_export_dir)
    assert len(encoder.trainable_weights) > 0
    a = tf_keras.Input(shape=(), dtype=tf.string)
    b = tf_keras.Input(shape=(), dtype=tf.string)
    cosine = tf_keras.layers.Dot(axes=-1)([model(a), model(b)])
    pair_model = tf_keras.Model([a, b], cosine)
    pair_model.compile(optimizer=tf_keras.optimizers.Adam(1e-2), loss="mse")
    before = [w.numpy().copy() for w in encoder.trainable_weights]
    x = [tf.constant([p[0] for p in KOREAN_PAIRS]), tf.constant([p[1] for p in KOREAN_PAIRS])]
    y = tf.constant([[1.0], [0.6], [0.8], [0.0]])
    pair_model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    changed = sum(not np.allclose(b0, w.numpy()) for b0, w in zip(before, encoder.trainable_weights))
    assert changed >= len(before) - 2 * 2  # all but the key biases (zero gradient) of 2 layers


def test_hub_dropout_only_with_training(tiny_export_dir):
    model, _ = _hub_string_model(tiny_export_dir)
    x = tf.constant(["나는 밥을 먹는다.", "고양이가 책을 읽는다"])
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
    assert not np.allclose(model(x, training=True), model(x, training=True))


def test_sentence_encoder_module_fine_tunes_like_a_tf_hub_text_embedding(tiny_export_dir):
    """`hub.KerasLayer(sentence_encoder/1, trainable=True)`, the Universal Sentence Encoder's
    pattern: trainable weights, dropout only in training, and fit moves the embeddings (the
    module used to have no trainable_variables, so it trained nothing, silently)."""
    import tensorflow_hub as hub
    import tf_keras

    path = os.path.join(tiny_export_dir, "sentence_encoder", "1")
    frozen = hub.KerasLayer(path, output_key=SERVING_OUTPUT)
    assert frozen.trainable_weights == []
    layer = hub.KerasLayer(path, trainable=True, output_key=SERVING_OUTPUT)
    text = tf_keras.Input(shape=(), dtype=tf.string)
    model = tf_keras.Model(text, layer(text))
    assert len(model.trainable_weights) > 0
    x = tf.constant([p[0] for p in KOREAN_PAIRS])
    start = model(x, training=False).numpy()
    np.testing.assert_allclose(start, SentenceEncoder.load(tiny_export_dir).encode([p[0] for p in KOREAN_PAIRS]),
                               atol=1e-5)
    assert not np.allclose(model(x, training=True), model(x, training=True))      # dropout
    target = np.roll(start, 1, axis=0)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2), loss=tf_keras.losses.CosineSimilarity())
    model.fit(x, target, epochs=3, batch_size=4, verbose=0)
    tuned = model(x, training=False).numpy()
    assert np.abs(tuned - start).max() > 1e-2
    assert np.sum(tuned * target) > np.sum(start * target)     # closer to the targets


MIRRORED_HUB_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    tf.config.experimental.enable_op_determinism()  # unseeded random ops would be refused
    import numpy as np
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401

    export_dir = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        encoder = hub.KerasLayer(export_dir + "/encoder", trainable=True)
    pre = hub.load(export_dir + "/preprocess")
    inputs = pre(tf.constant(["나는 밥을 먹는다.", "고양이가 책을 읽는다"]))
    # Replica 1's inputs differ from replica 0's in masked padding only (ids the encoder never
    # sees): the same embeddings without dropout, so with dropout any difference is the masks.
    garbage = tf.where(inputs["input_mask"] == 0, 7, inputs["input_word_ids"])
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: dict(inputs, input_word_ids=garbage) if ctx.replica_id_in_sync_group else inputs)
    out = {}
    for training in (True, False):
        step = tf.function(lambda x: strategy.run(lambda y: encoder(y, training=training)["pooled_output"], args=(x,)))
        first, second = [t.numpy() for t in strategy.experimental_local_results(step(per_replica))]
        out[str(training)] = float(np.abs(first - second).max())
    print("RESULT " + json.dumps(out))
""")


def test_restored_encoder_draws_different_dropout_masks_on_each_replica(tiny_export_dir):
    """Fine-tuning the exported encoder under MirroredStrategy, with op determinism on: replicas
    fed different examples draw different dropout masks (the export traced the seeded
    ReplicaDropout on one device, which left every replica the same seed)."""
    proc = subprocess.run([sys.executable, "-c", MIRRORED_HUB_SCRIPT, tiny_export_dir],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["False"] < 1e-6, out      # inference: padding ids change nothing
    assert out["True"] > 1e-3, out       # training: independent dropout on each replica


NON_CORE_OPS_SCRIPT = textwrap.dedent("""
    import sys
    import tensorflow as tf  # and not tensorflow_text: its ops stay unregistered
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry
    saved = saved_model_pb2.SavedModel()
    with open(sys.argv[1], "rb") as f:
        saved.ParseFromString(f.read())
    graph = saved.meta_graphs[0].graph_def
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    print(sorted(op for op in ops if op_def_registry.get(op) is None))
""")


@pytest.mark.parametrize("sub", ["preprocess", os.path.join("sentence_encoder", "1")])
def test_string_modules_need_only_ops_tf_serving_has(tiny_export_dir, sub):
    """Beyond core TensorFlow, only the SentencePiece ops and NormalizeUTF8 (NFC): TF Serving's
    release images embedded TensorFlow Text 2.12.1 as of tensorflow/serving PR #4057 (2025), which
    has them but not RoundRobinTrim (added in 2.16), and a SavedModel using that op fails to load
    there."""
    proc = subprocess.run([sys.executable, "-c", NON_CORE_OPS_SCRIPT,
                           os.path.join(tiny_export_dir, sub, "saved_model.pb")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "['NormalizeUTF8', 'SentencepieceOp', 'SentencepieceTokenizeOp']"


def test_encoder_carries_its_tokenizer_file_as_tf_hub_encoders_do(tiny_model_dir, tiny_export_dir):
    """`encoder.sp_model_file` (tf-models' TF Hub encoders' attribute) is the model's SentencePiece
    file, copied into the export: a host-side tokenizer built from it agrees with `tokenize`."""
    import sentencepiece as spm
    import tensorflow_hub as hub

    encoder = hub.load(os.path.join(tiny_export_dir, "encoder"))
    path = encoder.sp_model_file.asset_path.numpy().decode()
    assert path.startswith(os.path.join(tiny_export_dir, "encoder", "assets"))
    with open(path, "rb") as f, open(os.path.join(tiny_model_dir, "tokenizer.model"), "rb") as g:
        assert f.read() == g.read()
    assert not bool(encoder.do_lower_case.numpy())
    sentences = [p[0] for p in KOREAN_PAIRS]
    host = spm.SentencePieceProcessor(model_file=path).encode(sentences)
    pre = hub.load(os.path.join(tiny_export_dir, "preprocess"))
    assert pre.tokenize(tf.constant(sentences)).to_list() == host


def test_special_tokens_and_callable_sentence_encoder(tiny_model_dir, tiny_export_dir):
    """TF Hub's places: `preprocess.tokenize.get_special_tokens_dict()` (as on the BERT preprocess
    models) and a callable text-embedding module that `hub.KerasLayer(path)` takes as is."""
    import tensorflow_hub as hub

    pre = hub.load(os.path.join(tiny_export_dir, "preprocess"))
    special = {k: int(v) for k, v in pre.tokenize.get_special_tokens_dict().items()}
    assert special == {k: int(v) for k, v in pre.get_special_tokens_dict().items()}
    assert special["vocab_size"] > special["padding_id"] >= 0
    serving_dir = os.path.join(tiny_export_dir, "sentence_encoder", "1")
    sentences = tf.constant([p[0] for p in KOREAN_PAIRS])
    expected = SentenceEncoder.load(tiny_model_dir).encode([p[0] for p in KOREAN_PAIRS])
    np.testing.assert_allclose(hub.KerasLayer(serving_dir)(sentences)[SERVING_OUTPUT], expected, atol=1e-5)
    np.testing.assert_allclose(hub.load(serving_dir)(sentences)[SERVING_OUTPUT], expected, atol=1e-5)


def test_exporting_an_export_says_to_pass_the_model_directory(tiny_export_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="is a tfkosent export .*pass the model directory it was "
                                                "exported from"):
        export_model(tiny_export_dir, str(tmp_path / "again"))


def test_seq_length_leaves_room_for_a_pair_under_roberta_packing(tmp_path):
    from tfkosent import testing
    from tfkosent.training import synthetic
    model = testing.write_tiny_model(str(tmp_path / "roberta"), packing="roberta",
                                     sentences=synthetic.vocabulary_sentences())
    with pytest.raises(ValueError, match=r"seq_length must be an int >= 4 \(a sentence pair's special "
                                         r"tokens under roberta packing\), got 3"):
        export_model(model, str(tmp_path / "never"), seq_length=3)


def test_string_inputs_must_be_a_vector_of_utf8(tiny_export_dir):
    pre = tf.saved_model.load(os.path.join(tiny_export_dir, "preprocess"))
    bad = tf.constant(["정상".encode(), b"caf\xe9 latin-1"])
    for fn in (pre, pre.tokenize):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"not valid UTF-8 at rows.*\[1\]"):
            fn(bad)
    assert pre(tf.constant(["정상", ""]))["input_word_ids"].shape[0] == 2
    # Signatures do not enforce their input's shape (the tf.functions above refuse it while
    # binding arguments): a scalar or a matrix would be read as a batch without the check.
    serving = tf.saved_model.load(os.path.join(tiny_export_dir, "sentence_encoder", "1"))
    signatures = [serving.signatures["serving_default"], pre.signatures["serving_default"]]
    for signature in signatures:
        for not_a_vector in (tf.constant("정상"), tf.constant([["정상", "문장"]])):
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match=r"Shape of tensor sentences \S+ is not compatible with expected shape \[\?\]"):
                signature(sentences=not_a_vector)


def test_hub_pair_path_tokenize_then_pack(tiny_export_dir, tmp_path):
    import tensorflow_hub as hub
    import tf_keras

    preprocessor = hub.load(os.path.join(tiny_export_dir, "preprocess"))
    tokenize = hub.KerasLayer(preprocessor.tokenize)
    pack = hub.KerasLayer(preprocessor.bert_pack_inputs, arguments=dict(seq_length=32))
    a = tf_keras.Input(shape=(), dtype=tf.string)
    b = tf_keras.Input(shape=(), dtype=tf.string)
    model = tf_keras.Model([a, b], pack([tokenize(a), tokenize(b)]))
    out = model([tf.constant(["나는 밥을 먹는다", "고양이가"]), tf.constant(["우리는", "책을 읽는다 " * 30])])
    special = {k: int(v) for k, v in preprocessor.get_special_tokens_dict().items()}
    ids, types, mask = (out[k].numpy() for k in ("input_word_ids", "input_type_ids", "input_mask"))
    assert ids.shape == types.shape == mask.shape == (2, 32)
    for row, trow, mrow in zip(ids, types, mask):
        n = int(mrow.sum())
        seps = np.flatnonzero(row[:n] == special["end_of_segment_id"])
        assert row[0] == special["start_of_sequence_id"] and len(seps) == 2 and seps[-1] == n - 1
        np.testing.assert_array_equal(trow[:seps[0] + 1], 0)
        np.testing.assert_array_equal(trow[seps[0] + 1:n], 1)
        np.testing.assert_array_equal(row[n:], special["padding_id"])
    # The model saves and reloads: `tokenize` carries its tokenizer (without it, saving failed
    # with "Tried to export a function which references an 'untracked' resource").
    model.save(str(tmp_path / "pair_model"))
    reloaded = tf_keras.models.load_model(str(tmp_path / "pair_model"))
    again = reloaded([tf.constant(["나는 밥을 먹는다", "고양이가"]), tf.constant(["우리는", "책을 읽는다 " * 30])])
    np.testing.assert_array_equal(again["input_word_ids"].numpy(), ids)
    # past the encoder's position table: an error here, on the host (XLA would clamp the lookup)
    import json
    limit = json.load(open(os.path.join(tiny_export_dir, "tfkosent_export.json")))["seq_length"]
    segments = [preprocessor.tokenize(tf.constant(["나는 밥을 먹는다"]))]
    assert preprocessor.bert_pack_inputs(segments, seq_length=tf.constant(limit))["input_mask"].shape[1] == limit
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"seq_length exceeds the encoder maximum of {limit} positions"):
        preprocessor.bert_pack_inputs(segments, seq_length=tf.constant(limit + 1))


def test_keras3_tfsmlayer_inference_and_fine_tuning(tiny_export_dir):
    import keras

    preprocess = keras.layers.TFSMLayer(os.path.join(tiny_export_dir, "preprocess"),
                                        call_endpoint="serving_default")
    encoder = keras.layers.TFSMLayer(os.path.join(tiny_export_dir, "encoder"), call_endpoint="serve",
                                     call_training_endpoint="serve_training", trainable=True)
    text = keras.Input(shape=(), dtype="string")
    pooled = encoder(preprocess(text))["pooled_output"]
    model = keras.Model(text, keras.layers.Lambda(lambda x: tf.math.l2_normalize(x, -1))(pooled))
    a = tf.constant([p[0] for p in KOREAN_PAIRS])
    b = tf.constant([p[1] for p in KOREAN_PAIRS])
    reference = SentenceEncoder.load(tiny_export_dir).encode([p[0] for p in KOREAN_PAIRS])
    np.testing.assert_allclose(model(a).numpy(), reference, atol=1e-5)
    weights = model.trainable_weights
    before = [w.numpy().copy() for w in weights]
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(tf.reduce_sum(model(a, training=True) * model(b, training=True), -1))
    grads = tape.gradient(loss, weights)
    keras.optimizers.Adam(1e-2).apply_gradients(zip(grads, weights))
    assert sum(not np.allclose(b0, w.numpy()) for b0, w in zip(before, weights)) >= len(weights) - 4


def test_keras3_fit_with_adamw_through_fine_tunable_tfsm_layer(tiny_export_dir, tmp_path):
    """`model.fit` with AdamW: keras.layers.TFSMLayer's weight names (":0") break the optimizer's
    slot scopes inside fit; FineTunableTFSMLayer's do not, and it embeds like encode(). The README's
    model (UnitNormalization, not a Lambda, which `load_model` cannot rebuild) saves and reloads
    with its fine-tuned weights."""
    import keras

    from tfkosent.layers import FineTunableTFSMLayer

    preprocess = FineTunableTFSMLayer(os.path.join(tiny_export_dir, "preprocess"),
                                      call_endpoint="serving_default")
    encoder = FineTunableTFSMLayer(os.path.join(tiny_export_dir, "encoder"), call_endpoint="serve",
                                   call_training_endpoint="serve_training", trainable=True)
    text = keras.Input(shape=(), dtype="string")
    pooled = encoder(preprocess(text))["pooled_output"]
    model = keras.Model(text, keras.layers.UnitNormalization(axis=-1)(pooled))
    a = [p[0] for p in KOREAN_PAIRS]
    np.testing.assert_allclose(model(tf.constant(a)).numpy(), SentenceEncoder.load(tiny_export_dir).encode(a),
                               atol=1e-5)
    assert not [w.name for w in model.trainable_weights if ":" in w.name]
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss=keras.losses.CosineSimilarity())
    target = SentenceEncoder.load(tiny_export_dir).encode([p[1] for p in KOREAN_PAIRS])
    model.fit(tf.constant(a), target, batch_size=2, epochs=1, verbose=0)
    changed = sum(not np.allclose(b0, w.numpy()) for b0, w in zip(before, model.trainable_weights))
    assert changed >= len(before) - 4
    tuned = model.predict(tf.constant(a), verbose=0)
    model.save(str(tmp_path / "tuned.keras"))
    reloaded = keras.models.load_model(str(tmp_path / "tuned.keras"), safe_mode=False)
    np.testing.assert_allclose(reloaded.predict(tf.constant(a), verbose=0), tuned, atol=1e-6)


def test_keras3_auto_jit_stays_off_with_string_preprocessing_on_a_gpu(tiny_export_dir, monkeypatch):
    """Keras' jit_compile="auto" turns XLA on when the machine has a GPU and every layer supports
    it; XLA cannot compile the preprocess module's string ops (fit/predict failed with a RET_CHECK
    error on GPUs). FineTunableTFSMLayer over a string endpoint opts out; the encoder alone does
    not. The GPU is simulated: Keras asks tf.config.list_physical_devices."""
    import keras

    from tfkosent.layers import FineTunableTFSMLayer

    from tensorflow.python.framework import config as tf_framework_config

    # Keras also keeps XLA off under op determinism, which earlier tests in this process turn on
    monkeypatch.setattr(tf_framework_config, "is_op_determinism_enabled", lambda: False)
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda device_type=None: (
        real(device_type) + ([tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")]
                             if device_type in (None, "GPU") else [])))

    def compiled(preprocess_layer):
        encoder = FineTunableTFSMLayer(os.path.join(tiny_export_dir, "encoder"), call_endpoint="serve",
                                       call_training_endpoint="serve_training", trainable=True)
        text = keras.Input(shape=(), dtype="string")
        model = keras.Model(text, encoder(preprocess_layer(text))["pooled_output"])
        model.compile(optimizer="adamw", loss="cosine_similarity")
        return model

    path = os.path.join(tiny_export_dir, "preprocess")
    assert compiled(keras.layers.TFSMLayer(path, call_endpoint="serving_default")).jit_compile is True
    assert compiled(FineTunableTFSMLayer(path, call_endpoint="serving_default")).jit_compile is False
    encoder_only = FineTunableTFSMLayer(os.path.join(tiny_export_dir, "encoder"), call_endpoint="serve")
    assert encoder_only.supports_jit is True


SERVING_SCRIPT = textwrap.dedent("""
    import sys, json
    import tensorflow as tf
    import tensorflow_text  # registers the SentencePiece ops, nothing else of ours
    m = tf.saved_model.load(sys.argv[1])
    f = m.signatures["serving_default"]
    batches = [
        [s.encode() for s in ["한국어 문장입니다.", "", "   ", "가나다 " * 4000, "😀 emoji 漢字 섞인 문장"]],
        ["정상 문장".encode(), b"\\xff\\xfe\\xfa broken utf-8", "정상 문장".encode(), "가".encode()[:2]],
        [],
    ]
    out = []
    for batch in batches:
        try:
            emb = f(sentences=tf.constant(batch, dtype=tf.string))["embeddings"].numpy()
        except tf.errors.InvalidArgumentError as e:
            out.append({"error": e.message})
            continue
        out.append({"shape": list(emb.shape), "finite": bool((emb == emb).all()),
                    "norms": [float((e ** 2).sum() ** 0.5) for e in emb]})
    # TF Serving replays these at load time; replay them the same way (the PredictionLog
    # protos come from tensorflow-serving-api, which is only protos, no tfkosent code).
    from tensorflow_serving.apis import prediction_log_pb2
    replayed = []
    for raw in tf.data.TFRecordDataset(sys.argv[1] + "/assets.extra/tf_serving_warmup_requests"):
        request = prediction_log_pb2.PredictionLog.FromString(raw.numpy()).predict_log.request
        fn = m.signatures[request.model_spec.signature_name]
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        replayed.append(list(fn(**inputs)["embeddings"].shape))
    out.append({"warmup_records": len(replayed), "warmup_shapes": replayed})
    # tensorflow itself pulls in keras; what must not be needed is our own code or TF Hub.
    mods = sorted(k for k in sys.modules if k.split(".")[0] in ("tfkosent", "tensorflow_hub"))
    out.append({"foreign_modules": mods})
    print(json.dumps(out))
""")


def test_serving_signature_in_fresh_process_with_bad_inputs(tiny_export_dir):
    serving_dir = os.path.join(tiny_export_dir, "sentence_encoder", "1")
    proc = subprocess.run([sys.executable, "-c", SERVING_SCRIPT, serving_dir], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results[0]["shape"] == [5, 32] and results[0]["finite"]
    np.testing.assert_allclose(results[0]["norms"], 1.0, atol=1e-5)
    # a request with bytes that are not UTF-8 fails, naming the rows (SentencePiece would embed them)
    assert "sentences: not valid UTF-8 at rows" in results[1]["error"] and "[1 3]" in results[1]["error"]
    assert results[2]["shape"] == [0, 32]
    assert results[3]["warmup_records"] == 1
    assert results[3]["warmup_shapes"] == [[3, 32]]
    assert results[4]["foreign_modules"] == []


def test_warmup_records_replay_against_signature(tiny_export_dir):
    from tensorflow_serving.apis import prediction_log_pb2

    serving_dir = os.path.join(tiny_export_dir, "sentence_encoder", "1")
    signature = tf.saved_model.load(serving_dir).signatures["serving_default"]
    records = list(tf.data.TFRecordDataset(
        os.path.join(serving_dir, "assets.extra", "tf_serving_warmup_requests")))
    assert records
    for raw in records:
        log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        assert set(inputs) == {SERVING_INPUT}
        out = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        assert out[SERVING_OUTPUT].shape == (len(inputs[SERVING_INPUT]), 32)


def test_saved_model_cli_shows_and_runs_signature(tiny_export_dir):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip("saved_model_cli not installed next to this python")
    serving_dir = os.path.join(tiny_export_dir, "sentence_encoder", "1")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    show = subprocess.run([cli, "show", "--dir", serving_dir, "--all"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert show.returncode == 0, show.stderr[-2000:]
    assert "signature_def['serving_default']" in show.stdout
    assert "inputs['sentences'] tensor_info" in show.stdout and "DT_STRING" in show.stdout
    assert "outputs['embeddings'] tensor_info" in show.stdout


def test_export_is_atomic_and_refuses_to_overwrite(tiny_model_dir, tmp_path):
    target = tmp_path / "exp"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    # not "pass --overwrite": that is refused too (below)
    with pytest.raises(FileExistsError, match="is not a tfkosent export .*choose another output directory"):
        export_model(tiny_model_dir, str(target))
    assert (target / "keep.txt").read_text() == "mine"
    # --overwrite replaces an earlier export, never a directory of other files (e.g. a repository's
    # export/ folder of scripts, which `--out export/ --overwrite` deleted)
    with pytest.raises(FileExistsError, match="is not a tfkosent export .*refusing to replace it"):
        export_model(tiny_model_dir, str(target), overwrite=True)
    assert (target / "keep.txt").read_text() == "mine"
    broken = tmp_path / "broken_model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "weights.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="config.json"):
        export_model(str(broken), str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_seq_length_sets_the_preprocess_default_only(tiny_model_dir, tmp_path):
    """`seq_length` is what preprocess/ pads to by default (TF Hub's 128 unless given);
    sentence_encoder/1 and SentenceEncoder.load(export) still truncate at the model's maximum."""
    import tensorflow_hub as hub

    out = export_model(tiny_model_dir, str(tmp_path / "exp16"), seq_length=16, warmup=False)
    info = json.load(open(os.path.join(out, "tfkosent_export.json")))
    assert (info["preprocess_seq_length"], info["seq_length"]) == (16, 64)
    sentences = ["나는 밥을 먹는다.", "우리는 공원에서 축구를 한다 " * 8]
    pre = hub.load(os.path.join(out, "preprocess"))
    assert pre(tf.constant(sentences))["input_word_ids"].shape == (2, 16)
    assert pre.bert_pack_inputs([pre.tokenize(tf.constant(sentences))])["input_mask"].shape == (2, 16)
    model = SentenceEncoder.load(tiny_model_dir)
    assert len(model.tokenize(sentences[1])[0]) > 16  # the long one is cut by preprocess, not by serving
    expected = model.encode(sentences)
    serving = tf.saved_model.load(os.path.join(out, "sentence_encoder", "1")).signatures["serving_default"]
    np.testing.assert_allclose(serving(**{SERVING_INPUT: tf.constant(sentences)})[SERVING_OUTPUT].numpy(),
                               expected, atol=1e-5)
    np.testing.assert_allclose(SentenceEncoder.load(out).encode(sentences), expected, atol=1e-5)


@pytest.mark.parametrize("bad", [0, 2, 1.5, True])
def test_bad_seq_length_is_refused_before_writing(tiny_model_dir, tmp_path, bad):
    with pytest.raises(ValueError, match="seq_length must be an int >= 3 .* under bert packing"):
        export_model(tiny_model_dir, str(tmp_path / "never"), seq_length=bad)
    assert not (tmp_path / "never").exists()


def test_seq_length_bounds_count_the_prefix_and_the_model_maximum(tiny_model_dir,
                                                                 tiny_prefixed_model_dir, tmp_path):
    """seq_length over the model's maximum (64) was clamped silently; with a text prefix
    ("query: "), lengths that left no text token after the prefixes and special tokens made
    every input pack to the same ids. All are refused, naming the bound. The bound counts the
    tokens every text starts with (the tiny vocabulary also puts a lone "▁" there), so
    different sentences pack differently at it. preprocess/'s bert_pack_inputs sets no such
    bound: packing a batch of blank sentences to its longest row is a prefix-only length."""
    from tfkosent.export import build_preprocess_module
    from tfkosent.model_dir import load_model_dir

    pre = load_model_dir(tiny_prefixed_model_dir).build_preprocessor(16)
    p = pre.prefix_length()
    assert p > 0
    pair_minimum = 3 + 2 * p + 1   # [CLS] a [SEP] b [SEP], both prefixes, one text token
    cases = [(tiny_model_dir, 65, r"seq_length must be at most 64 \(the model's maximum length\), "
                                  r"got 65"),
             (tiny_model_dir, 100000, "at most 64"),
             (tiny_prefixed_model_dir, pair_minimum - 1,
              rf"seq_length must be an int >= {pair_minimum} \(a sentence pair's special tokens "
              rf"under bert packing, the {p} tokens of the prefix 'query: ' before each sentence, "
              rf"and one text token\), got {pair_minimum - 1}")]
    for model_dir, bad, message in cases:
        with pytest.raises(ValueError, match=message):
            export_model(model_dir, str(tmp_path / "never"), seq_length=bad)
    assert not (tmp_path / "never").exists()
    # preprocess/'s bert_pack_inputs (the module as export_model saves it, called unsaved)
    module, _ = build_preprocess_module(pre, 64)
    segment = pre.tokenize(tf.constant(["나는 밥을 먹는다", "고양이가", "우리는 책을 읽는다"]))
    for segments, minimum in (([segment], 2 + p + 1), ([segment, segment], pair_minimum)):
        ids = module.bert_pack_inputs(segments, seq_length=tf.constant(minimum))["input_word_ids"]
        assert len({tuple(row) for row in ids.numpy().tolist()}) == 3   # one text token each
    blank = pre.tokenize(tf.constant(["", " "]))
    packed = module.bert_pack_inputs([blank], seq_length=tf.constant(2 + int(blank.row_lengths()[0])))
    assert packed["input_mask"].numpy().all()


# TF Serving's Predict path, simulated: the SavedModel loaded into a TF1 session and the signature's
# tensors fed and fetched by name, with no Python-side check of shapes or dtypes (as in the C++
# server). In a fresh process, so that an abort would show as a return code. Cases come on stdin
# as JSON: [{input key: [dtype, shape, flat list of values]}, ...], strings as UTF-8 text.
TF1_SESSION_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (a model server with TF.Text's ops linked)
    from tensorflow.core.protobuf import config_pb2

    path, signature_name = sys.argv[1], sys.argv[2]
    session = tf.compat.v1.Session(graph=tf.Graph())
    with session.graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    signature = meta.signature_def[signature_name]
    out = []
    for case in json.loads(sys.stdin.read()):
        keys, fetch = sorted(case), sorted(signature.outputs)
        options = config_pb2.CallableOptions(feed=[signature.inputs[k].name for k in keys],
                                             fetch=[signature.outputs[k].name for k in fetch])
        values = [np.array([v.encode() for v in flat] if dtype == "string" else flat,
                           dtype=object if dtype == "string" else dtype).reshape(shape)
                  for dtype, shape, flat in (case[k] for k in keys)]
        try:
            results = session._make_callable_from_options(options)(*values)
        except tf.errors.InvalidArgumentError as e:
            out.append({"error": e.message.splitlines()[0]})
            continue
        out.append({k: list(v.shape) for k, v in zip(fetch, results)})
    print("RESULT " + json.dumps(out))
""")


def _serve_in_tf1_session(saved_model_dir, signature, cases):
    """What a TF Serving Predict on `signature` answers to each of `cases`: {output: shape} or
    {"error": the InvalidArgumentError's first line}."""
    proc = subprocess.run([sys.executable, "-c", TF1_SESSION_SCRIPT, saved_model_dir, signature],
                          input=json.dumps(cases), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _tensor_case(dtype, values):
    values = np.asarray(values)
    return [dtype, list(values.shape), values.reshape(-1).tolist()]


def _encoder_case(ids, mask=None, types=None):
    ids = np.asarray(ids)
    return {"input_word_ids": _tensor_case("int32", ids),
            "input_mask": _tensor_case("int32", np.ones_like(ids) if mask is None else mask),
            "input_type_ids": _tensor_case("int32", np.zeros_like(ids) if types is None else types)}


def test_encoder_serving_signatures_refuse_inputs_it_was_not_trained_on(tiny_export_dir):
    """encoder/ served alone (docs/serving.md option 4): out-of-range ids, mask values other than
    0/1, rows with no token, rows past the position table, type ids past the type table and
    mismatched shapes fail with InvalidArgumentError naming the input. Before, a negative id was
    silently wrapped (id -5 embedded as vocab_size - 5), a mask of 2 changed the output and an
    all-zero mask gave a zero pooled_output (NaN once normalized)."""
    info = json.load(open(os.path.join(tiny_export_dir, "tfkosent_export.json")))
    vocab = int(tf.saved_model.load(os.path.join(tiny_export_dir, "preprocess"))
                .get_special_tokens_dict()["vocab_size"])
    limit = info["seq_length"]
    ok = [1, 5, 6, 2]
    cases = {
        "valid": (_encoder_case([ok, ok]), None),
        "empty batch": (_encoder_case(np.zeros((0, 4), int)), None),
        "negative id": (_encoder_case([ok, [1, -5, 6, 2]]),
                        rf"input_word_ids: ids must be in \[0, {vocab}\) \(the vocabulary\), got values from -5 to 6"),
        "id past the vocabulary": (_encoder_case([[1, vocab, 2]]),
                                   rf"input_word_ids: ids must be in \[0, {vocab}\).*to {vocab}"),
        "mask value 2": (_encoder_case([ok], mask=[[2, 2, 2, 2]]),
                         r"input_mask: values must be 0 \(padding\) or 1 \(token\), got values from 2 to 2"),
        "a row with no token": (_encoder_case([ok, ok, ok], mask=[[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]),
                                r"input_mask: every row needs at least one 1 .*rows without: \[1\]"),
        "rows of length 0": (_encoder_case(np.zeros((2, 0), int)), r"rows without: \[0 1\]"),
        "past the position table": (_encoder_case(np.full((1, limit + 1), 5)),
                                    rf"input_word_ids: at most {limit} tokens a row \(the length of "
                                    rf"the position table\), got {limit + 1}"),
        "type id past the type table": (_encoder_case([ok], types=[[0, 0, 2, 0]]),
                                        r"input_type_ids: values must be in \[0, 2\), got values from 0 to 2"),
        "shapes differ": (_encoder_case([ok, ok], types=[[0]]),
                          r"input_mask and input_type_ids must have the shape of input_word_ids \[2 4\]"),
    }
    for signature, outputs in (("pooled_output", ["pooled_output"]),
                               ("serving_default", ["default", "encoder_outputs_0", "encoder_outputs_1",
                                                    "pooled_output", "sequence_output"])):
        results = _serve_in_tf1_session(os.path.join(tiny_export_dir, "encoder"), signature,
                                        [case for case, _ in cases.values()])
        for (name, (_, error)), result in zip(cases.items(), results):
            if error is None:
                assert sorted(result) == outputs, (signature, name, result)
            else:
                assert "error" in result, (signature, name, result)
                assert re.search(error, result["error"]), (signature, name, result)


def test_encoder_fine_tuning_paths_stay_free_of_asserts(tiny_model_dir):
    """The checks are on the serving signatures only: `__call__` (hub.KerasLayer), `serve` and
    `serve_training` (TFSMLayer) are what fine-tuning compiles, where XLA drops Assert ops."""
    from tfkosent.export import _encoder_input_spec, build_encoder_module
    from tfkosent.model_dir import load_model_dir

    module, signatures = build_encoder_module(load_model_dir(tiny_model_dir).build_encoder())

    def op_types(function):
        graph = function.graph.as_graph_def()
        return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}

    spec = _encoder_input_spec()
    for training in (False, True):
        assert "Assert" not in op_types(module.__call__.get_concrete_function(spec, training=training))
    for function in (module.serve, module.serve_training):
        assert "Assert" not in op_types(function.get_concrete_function())
    for function in signatures.values():
        assert "Assert" in op_types(function.get_concrete_function())


def test_max_batch_tokens_refuses_a_request_over_budget(tiny_budget_export_dir):
    """`export_model(..., max_batch_tokens=N)`: sentence_encoder/1 and encoder/'s signatures refuse
    a request of more than N padded tokens (rows x the longest row) with InvalidArgumentError
    saying how big it was and to split it; `__call__` (fine-tuning) and requests within N are as
    before. Without it one request of thousands of long sentences could OOM a CPU server."""
    out = tiny_budget_export_dir
    info = json.load(open(os.path.join(out, "tfkosent_export.json")))
    assert info["serving"]["max_batch_tokens"] == 128 and info["seq_length"] == 64
    long_sentence = "우리는 공원에서 축구를 한다 " * 20   # truncated at 64 tokens
    short = "나는 밥을 먹는다."
    serving_dir = os.path.join(out, "sentence_encoder", "1")
    results = _serve_in_tf1_session(serving_dir, "serving_default", [
        {SERVING_INPUT: _tensor_case("string", [long_sentence] * 2)},
        {SERVING_INPUT: _tensor_case("string", [long_sentence] * 3)},
        {SERVING_INPUT: _tensor_case("string", [short] * 3 + [long_sentence])},
        {SERVING_INPUT: _tensor_case("string", [short] * 40)},
    ])
    assert results[0] == {SERVING_OUTPUT: [2, 32]}
    assert results[1]["error"] == (
        "assertion failed: [request too large: 3 sentences x 64 tokens (padded to the longest) = 192 "
        "tokens, over the max_batch_tokens of 128 this model was exported with; split it into requests "
        "of fewer sentences]")
    assert "4 sentences x 64 tokens" in results[2]["error"]
    assert "40 sentences x" in results[3]["error"]
    results = _serve_in_tf1_session(os.path.join(out, "encoder"), "pooled_output",
                                    [_encoder_case(np.full((2, 64), 5)), _encoder_case(np.full((3, 64), 5))])
    assert results[0] == {"pooled_output": [2, 32]}
    assert "request too large: 3 rows x 64 tokens (padded to the longest) = 192 tokens" in results[1]["error"]
    # the fine-tuning path (`__call__`) is not limited
    module = tf.saved_model.load(serving_dir)
    assert module(tf.constant([long_sentence] * 3))[SERVING_OUTPUT].shape == (3, 32)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, 63])
def test_bad_max_batch_tokens_is_refused_before_writing(tiny_model_dir, tmp_path, bad):
    match = ("must be at least the model's maximum length \\(64 tokens\\)" if bad == 63 else
             "max_batch_tokens must be a positive int")
    with pytest.raises(ValueError, match=match):
        export_model(tiny_model_dir, str(tmp_path / "never"), max_batch_tokens=bad)
    assert not (tmp_path / "never").exists()


def test_cli_export_max_batch_tokens(tiny_model_dir, tmp_path, capsys):
    from tfkosent.cli import main

    assert main(["export", "--model", tiny_model_dir, "--out", str(tmp_path / "never"),
                 "--max-batch-tokens", "0"]) == 2
    assert "max_batch_tokens must be a positive int, got 0" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_warmup_requests_one_record_per_batch_size(tiny_budget_export_dir, tmp_path):
    """Several batch sizes, one record each, replayed against the signature; more than 1,000
    records are refused (TF Serving fails the model's load: "Number of warmup records exceeds the
    maximum (1000)"), and so is a record the signature refuses (over the export's budget of 128
    tokens: 64 positions, two full rows), which would fail the load too."""
    from tensorflow_serving.apis import prediction_log_pb2

    from tfkosent.export import write_warmup_requests

    def requests(path):
        return [prediction_log_pb2.PredictionLog.FromString(raw.numpy()).predict_log.request
                for raw in tf.data.TFRecordDataset(path)]

    version = str(tmp_path / "1")
    shutil.copytree(os.path.join(tiny_budget_export_dir, "sentence_encoder", "1"), version)
    path = write_warmup_requests(version, ["가나다", "한국어 문장입니다."], batch_sizes=[1, 4, 3])
    signature = tf.saved_model.load(version).signatures["serving_default"]
    batches = []
    for request in requests(path):
        assert request.model_spec.signature_name == "serving_default"
        sentences = tf.make_ndarray(request.inputs[SERVING_INPUT])
        assert signature(**{SERVING_INPUT: tf.constant(sentences)})[SERVING_OUTPUT].shape == (len(sentences), 32)
        batches.append([s.decode() for s in sentences])
    assert batches == [["가나다"], ["가나다", "한국어 문장입니다."] * 2, ["가나다", "한국어 문장입니다.", "가나다"]]
    assert len(requests(write_warmup_requests(version, batch_sizes=[1] * 1000))) == 1000
    for bad, match in (([1] * 1001, "1 to 1000 sizes .*TF Serving fails the model's load with more"),
                       ([], "1 to 1000 sizes"), ([2, 0], "each of batch_sizes must be a positive int")):
        with pytest.raises(ValueError, match=match):
            write_warmup_requests(version, batch_sizes=bad)
    long_sentence = ["가나다 " * 100]   # cut to the 64 positions: 2 rows fit 128 tokens, 3 do not
    with pytest.raises(ValueError, match=r"warm-up record 2 \(3 sentences, the largest\) is refused by .*"
                                         r"TF Serving would fail the version's load: .*max_batch_tokens"):
        write_warmup_requests(version, long_sentence, batch_sizes=[1, 2, 3])
    assert len(requests(path)) == 1000   # a refused call leaves the file as it was
    with pytest.raises(ValueError, match="not a SavedModel directory .*check=False"):
        write_warmup_requests(str(tmp_path / "elsewhere"))
    other = write_warmup_requests(str(tmp_path / "elsewhere"), long_sentence, batch_sizes=[3], check=False)
    assert len(requests(other)) == 1


def test_warmup_sentences_are_checked_as_encode_checks_them(tmp_path):
    """One str is one sentence (it was split into characters); an item that is not valid text
    names its index (it was "Can't convert Python sequence with mixed types")."""
    from tensorflow_serving.apis import prediction_log_pb2

    from tfkosent.export import write_warmup_requests

    path = write_warmup_requests(str(tmp_path / "one"), "오늘 날씨", check=False)
    (raw,) = list(tf.data.TFRecordDataset(path))
    request = prediction_log_pb2.PredictionLog.FromString(raw.numpy()).predict_log.request
    assert [s.decode() for s in tf.make_ndarray(request.inputs[SERVING_INPUT])] == ["오늘 날씨"]
    for bad, error, message in ((["a", None], TypeError, r"sentences\[1\] must be a str, got NoneType"),
                                (["a", "\ud800"], ValueError, r"sentences\[1\] is not valid UTF-8 text")):
        with pytest.raises(error, match=message):
            write_warmup_requests(str(tmp_path / "bad"), bad, check=False)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "tfkosent_export.json").write_text("{}"), r"tfkosent_export.json: missing key 'packing'"),
    (lambda d: (d / "tfkosent_export.json").write_text('{"format":\n'),
     r"tfkosent_export.json: not valid JSON \(line 2"),
    (lambda d: os.truncate(d / "encoder" / "saved_model.pb", 1000),
     r"encoder/saved_model.pb: truncated or corrupt"),
])
def test_damaged_export_is_named(tiny_export_dir, tmp_path, capsys, damage, message):
    from tfkosent.cli import main

    export = tmp_path / "exp"
    shutil.copytree(tiny_export_dir, export)
    damage(export)
    with pytest.raises(ValueError, match=re.escape(str(export)) + "/" + message):
        SentenceEncoder.load(str(export))
    assert main(["encode", "--model", str(export), "가"]) == 2
    assert re.search(re.escape(str(export)) + "/" + message, capsys.readouterr().err)
