"""Keras 3 layers: tokenizer, packing, transformer encoder."""

import numpy as np
import pytest
import tensorflow as tf

from tfkosent import testing
from tfkosent.config import ConfigError, EncoderConfig, PreprocessConfig
from tfkosent.layers.packing import BertPackInputs
from tfkosent.layers.preprocessor import Preprocessor
from tfkosent.layers.tokenizer import SentencepieceTokenizer, WordpieceTokenizer
from tfkosent.layers.transformer import TransformerEncoder, count_parameters, weight_names


@pytest.fixture(scope="module")
def sp_proto():
    return testing.train_sentencepiece(testing.korean_sentences(400))


@pytest.fixture(scope="module")
def tokenizer(sp_proto):
    return SentencepieceTokenizer(sp_proto)


def test_special_tokens_dict(tokenizer):
    special = tokenizer.get_special_tokens_dict()
    assert special == {"vocab_size": tokenizer.vocab_size, "start_of_sequence_id": 2,
                       "end_of_segment_id": 3, "padding_id": 0, "mask_id": 4, "unk_id": 1}


def test_unknown_special_token_is_an_error(sp_proto):
    tok = SentencepieceTokenizer(sp_proto, cls_token="<s>")
    with pytest.raises(ValueError, match="<s>"):
        tok.get_special_tokens_dict()


def test_tokenizer_config_round_trip(tokenizer):
    clone = SentencepieceTokenizer.from_config(tokenizer.get_config())
    text = tf.constant(["나는 밥을 먹는다.", "고양이가 책을 읽는다"])
    assert tokenizer(text).to_list() == clone(text).to_list()


def test_tokenizer_repairs_invalid_utf8(tokenizer):
    ids = tokenizer(tf.constant([b"\xff\xfe\xfd", "😀 漢字 English 한국어".encode()]))
    assert ids.nrows() == 2  # no exception, one row each


def test_clean_text_nfkc_lower_case_and_prefix():
    from tfkosent.layers.tokenizer import clean_text
    out = clean_text(tf.constant(["ＡＢＣ 한국어", b"ok\xff"]), lower_case=True, normalize_nfkc=True,
                     text_prefix="query: ")
    assert [s.decode() for s in out.numpy()] == ["query: abc 한국어", "query: ok\ufffd"]
    plain = clean_text(tf.constant(["ＡＢＣ"]))
    assert plain.numpy()[0].decode() == "ＡＢＣ"


def test_decomposed_hangul_tokenizes_as_composed(tokenizer):
    """Text in NFD (Hangul as conjoining jamo, e.g. copied on macOS) is normalized to NFC first:
    the vocabularies are made from composed syllables."""
    import unicodedata
    composed = ["한 남자가 음식을 먹는다.", "나는 밥을 먹는다"]
    decomposed = [unicodedata.normalize("NFD", t) for t in composed]
    assert decomposed != composed
    assert tokenizer(tf.constant(decomposed)).to_list() == tokenizer(tf.constant(composed)).to_list()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "한국", "##어", "문장"]
    wordpiece = WordpieceTokenizer(vocab, lower_case=False)
    nfd = unicodedata.normalize("NFD", "한국어 문장")
    assert wordpiece(tf.constant([nfd])).to_list() == [[5, 6, 7]]


def test_text_prefix_is_prepended(sp_proto):
    prefixed = SentencepieceTokenizer(sp_proto, text_prefix="나는 ")
    plain = SentencepieceTokenizer(sp_proto)
    assert prefixed(tf.constant(["밥을"])).to_list() == plain(tf.constant(["나는 밥을"])).to_list()


def _ragged(rows):
    return tf.ragged.constant(rows, dtype=tf.int32)


def test_pack_bert_two_segments():
    packer = BertPackInputs(seq_length=10, start_of_sequence_id=2, end_of_segment_id=3, padding_id=0)
    out = packer([_ragged([[11, 12], [13]]), _ragged([[21], [22, 23, 24]])])
    np.testing.assert_array_equal(out["input_word_ids"], [[2, 11, 12, 3, 21, 3, 0, 0, 0, 0],
                                                         [2, 13, 3, 22, 23, 24, 3, 0, 0, 0]])
    np.testing.assert_array_equal(out["input_type_ids"], [[0, 0, 0, 0, 1, 1, 0, 0, 0, 0],
                                                         [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(out["input_mask"], [[1] * 6 + [0] * 4, [1] * 7 + [0] * 3])
    assert all(v.dtype == tf.int32 for v in out.values())


def test_pack_roberta_pattern():
    packer = BertPackInputs(seq_length=9, start_of_sequence_id=0, end_of_segment_id=2, padding_id=1,
                            packing="roberta")
    out = packer([_ragged([[11, 12]]), _ragged([[21]])])
    np.testing.assert_array_equal(out["input_word_ids"], [[0, 11, 12, 2, 2, 21, 2, 1, 1]])
    np.testing.assert_array_equal(out["input_type_ids"], [[0] * 9])


def test_round_robin_truncation_keeps_closing_separator():
    packer = BertPackInputs(seq_length=8, start_of_sequence_id=2, end_of_segment_id=3, padding_id=0)
    long_a, long_b = list(range(100, 140)), list(range(200, 240))
    out = packer([_ragged([long_a]), _ragged([long_b])])
    # 8 - 3 specials = 5 content tokens, round robin: 3 from a, 2 from b.
    np.testing.assert_array_equal(out["input_word_ids"], [[2, 100, 101, 102, 3, 200, 201, 3]])
    single = packer([_ragged([long_a])])
    assert single["input_word_ids"].numpy()[0, -1] == 3


@pytest.mark.parametrize("num_segments", [1, 2])
def test_round_robin_trim_matches_tensorflow_text(num_segments):
    """The core-op trim (TF Serving lacks TF-Text's RoundRobinTrim op) keeps exactly what
    tensorflow_text.RoundRobinTrimmer keeps, over random lengths and budgets (0 and empty rows too)."""
    import tensorflow_text as tf_text

    from tfkosent.layers.packing import round_robin_trim

    rng = np.random.default_rng(num_segments)
    for budget in [0, 1, 2, 3, 4, 5, 7, 8, 13, 30]:
        segments = [_ragged([list(range(100 * k, 100 * k + n)) for n in rng.integers(0, 12, size=40)])
                    for k in range(num_segments)]
        expected = tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)
        got = round_robin_trim(segments, tf.constant(budget))
        for e, g in zip(expected, got):
            assert g.to_list() == e.to_list(), budget
    empty = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64))
    assert [t.shape[0] for t in round_robin_trim([empty] * num_segments, 5)] == [0] * num_segments


def test_pack_call_time_seq_length_and_longest():
    packer = BertPackInputs(seq_length=16, start_of_sequence_id=2, end_of_segment_id=3, padding_id=0)
    assert packer([_ragged([[5, 6, 7]])], seq_length=6)["input_word_ids"].shape == (1, 6)
    assert packer([_ragged([[5, 6, 7], [5]])], seq_length="longest")["input_word_ids"].shape == (2, 5)
    assert packer([_ragged([list(range(50))])], seq_length="longest")["input_word_ids"].shape == (1, 16)


def test_pack_empty_batch_and_empty_rows():
    packer = BertPackInputs(seq_length=6, start_of_sequence_id=2, end_of_segment_id=3, padding_id=0)
    empty = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64))
    assert packer([empty])["input_word_ids"].shape == (0, 6)
    np.testing.assert_array_equal(packer([_ragged([[]])])["input_word_ids"], [[2, 3, 0, 0, 0, 0]])


def test_pack_rejects_bad_arguments():
    with pytest.raises(ValueError, match="packing"):
        BertPackInputs(seq_length=8, start_of_sequence_id=2, end_of_segment_id=3, padding_id=0,
                       packing="xlnet")
    with pytest.raises(ValueError, match="seq_length"):
        BertPackInputs(seq_length=2, start_of_sequence_id=2, end_of_segment_id=3, padding_id=0)
    packer = BertPackInputs(seq_length=8, start_of_sequence_id=2, end_of_segment_id=3, padding_id=0)
    with pytest.raises(ValueError, match="segments"):
        packer([_ragged([[1]])] * 3)
    with pytest.raises(ValueError, match="different numbers of rows; they pair row by row: 2, 1"):
        packer([_ragged([[1], [2]]), _ragged([[3]])])

    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)] * 2)
    def traced(a, b):   # batch sizes unknown when traced: checked when run
        return packer([a, b])["input_word_ids"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="different numbers of rows"):
        traced(_ragged([[1], [2]]), _ragged([[3]]))


def test_pack_config_round_trip():
    packer = BertPackInputs(seq_length=12, start_of_sequence_id=0, end_of_segment_id=2, padding_id=1,
                            packing="roberta")
    clone = BertPackInputs.from_config(packer.get_config())
    assert clone.get_config() == packer.get_config()


def test_preprocessor_config_round_trip(sp_proto):
    pre = Preprocessor.from_config_and_vocab(PreprocessConfig(seq_length=16), sentencepiece_proto=sp_proto)
    clone = Preprocessor.from_config(pre.get_config())
    text = tf.constant(["나는 밥을 먹는다.", ""])
    np.testing.assert_array_equal(pre(text)["input_word_ids"], clone(text)["input_word_ids"])


def test_wordpiece_tokenizer_splits_punctuation_and_suffixes():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "한국", "##어", "문장", ".", "!", "hello"]
    tok = WordpieceTokenizer(vocab, lower_case=True)
    ids = tok(tf.constant(["한국어 문장. HELLO!", "모르는말"])).to_list()
    assert ids == [[5, 6, 7, 8, 10, 9], [1]]
    assert tok.get_special_tokens_dict()["start_of_sequence_id"] == 2
    clone = WordpieceTokenizer.from_config(tok.get_config())
    assert clone(tf.constant(["한국어"])).to_list() == [[5, 6]]


# --- TransformerEncoder ---------------------------------------------------------------

def _config(**kw):
    base = dict(vocab_size=50, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                max_position_embeddings=40)
    base.update(kw)
    return EncoderConfig(**base)


def _inputs(ids):
    ids = tf.constant(ids, tf.int32)
    return {"input_word_ids": ids, "input_mask": tf.cast(ids > 0, tf.int32),
            "input_type_ids": tf.zeros_like(ids)}


@pytest.mark.parametrize("pooling", ["cls", "mean", "cls_dense_tanh"])
def test_encoder_outputs_and_padding_invariance(pooling):
    enc = TransformerEncoder(_config(pooling=pooling))
    short = enc(_inputs([[2, 7, 8, 3]]))
    padded = enc(_inputs([[2, 7, 8, 3, 0, 0, 0]]))
    assert short["sequence_output"].shape == (1, 4, 32)
    assert len(short["encoder_outputs"]) == 2
    assert short["pooled_output"].shape == (1, 32)
    np.testing.assert_array_equal(short["default"], short["pooled_output"])
    np.testing.assert_allclose(short["pooled_output"], padded["pooled_output"], atol=1e-5)


def test_dropout_only_in_training():
    enc = TransformerEncoder(_config(dropout_rate=0.3))
    x = _inputs([[2, 7, 8, 9, 3]])
    a, b = enc(x)["pooled_output"], enc(x, training=False)["pooled_output"]
    np.testing.assert_array_equal(a, b)
    c, d = enc(x, training=True)["pooled_output"], enc(x, training=True)["pooled_output"]
    assert not np.allclose(c, d)


def test_encoder_position_offset_uses_shifted_rows():
    cfg = _config(position_offset=2, type_vocab_size=1)
    enc = TransformerEncoder(cfg)
    x = _inputs([[2, 7, 3]])
    before = enc(x)["pooled_output"].numpy()
    w = enc.get_weight_dict()
    w["embeddings/position_embeddings"][:2] += 5.0  # rows 0, 1 must be unused
    enc.set_weight_dict(w)
    np.testing.assert_allclose(enc(x)["pooled_output"], before, atol=1e-6)
    w["embeddings/position_embeddings"][2] += 5.0
    enc.set_weight_dict(w)
    assert not np.allclose(enc(x)["pooled_output"], before)


def test_weight_names_cover_all_variables():
    for cfg in (_config(), _config(type_vocab_size=0, pooling="cls_dense_tanh")):
        enc = TransformerEncoder(cfg)
        enc.build()
        assert len(enc.get_weight_dict()) == len(weight_names(cfg)) == len(enc.trainable_weights)
        assert count_parameters(cfg) == sum(int(np.prod(v.shape)) for v in enc.trainable_weights)


def test_set_weight_dict_errors_name_the_field():
    enc = TransformerEncoder(_config())
    w = enc.get_weight_dict()
    word = w["embeddings/word_embeddings"].shape
    # the config field that sets the wrong dimension (a wrong width named vocab_size before)
    for shape, field in (((word[0] - 1, word[1]), r"encoder\.vocab_size"),
                         ((word[0], word[1] + 1), r"encoder\.hidden_size\)"),
                         ((word[0],), "the encoder config")):
        w["embeddings/word_embeddings"] = np.zeros(shape, np.float32)
        with pytest.raises(ValueError, match=rf"x\.npz: weight 'embeddings/word_embeddings' has "
                                             rf"shape .*\(check {field}"):
            enc.set_weight_dict(w, source="x.npz")
    w.pop("embeddings/word_embeddings")
    with pytest.raises(ValueError, match="missing"):
        enc.set_weight_dict(w)


def test_encoder_config_round_trip_and_validation():
    enc = TransformerEncoder(_config(pooling="cls"))
    clone = TransformerEncoder.from_config(enc.get_config())
    assert clone.config == enc.config
    with pytest.raises(ConfigError, match="divisible"):
        _config(num_heads=5)
    with pytest.raises(ConfigError, match="pooling"):
        _config(pooling="max")
    with pytest.raises(ConfigError, match="unknown key"):
        EncoderConfig.from_dict({"vocab_size": 10, "hiden_size": 8})
    with pytest.raises(ConfigError, match="expected int"):
        EncoderConfig.from_dict({"vocab_size": "10"})


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_encoder_under_mixed_precision(policy):
    import keras
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        enc = TransformerEncoder(_config())
        out = enc(_inputs([[2, 7, 8, 3, 0, 0]]), training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert out["pooled_output"].dtype == tf.float32
    assert np.all(np.isfinite(out["pooled_output"].numpy()))


def test_keras3_model_of_native_layers_saves_and_reloads(tiny_model_dir, tmp_path):
    """Preprocessor -> TransformerEncoder -> UnitNormalization as a .keras file: it reloads
    without warnings and embeds identically."""
    import warnings

    import keras

    from tfkosent.model_dir import load_model_dir

    files = load_model_dir(tiny_model_dir)
    text = keras.Input(shape=(), dtype="string")
    pooled = files.build_encoder()(files.build_preprocessor()(text))["pooled_output"]
    model = keras.Model(text, keras.layers.UnitNormalization(axis=-1)(pooled))
    sentences = tf.constant(["나는 밥을 먹는다.", "고양이가 책을 읽는다", ""])
    expected = model.predict(sentences, verbose=0)
    model.save(str(tmp_path / "native.keras"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reloaded = keras.models.load_model(str(tmp_path / "native.keras"))
    np.testing.assert_array_equal(reloaded.predict(sentences, verbose=0), expected)


def test_preprocessor_refuses_bad_strings_as_the_export_does(sp_proto):
    """Invalid UTF-8 and inputs that are not a vector fail where strings enter the layer, as in
    the exported preprocess/ (checked_sentences): before, 0xff bytes were dropped silently (only
    bad bytes embedded as "") and a [1, 2] matrix was packed as one row of both sentences."""
    pre = Preprocessor(SentencepieceTokenizer(sp_proto), seq_length=16)
    not_utf8 = tf.constant(["정상".encode(), b"\xff\xfe", "가".encode() + b"\xff"])
    cases = [(not_utf8, r"not valid UTF-8 at rows.*\[1 2\]"),
             (tf.constant([["가", "나"]]), r"expected a vector of strings \(tf.string \[batch\], or "
                                          r"\[batch, 1\]\), got shape \[1, 2\]"),
             (tf.constant([[["가"]]]), r"got shape \[1, 1, 1\]"),
             (tf.constant("가"), r"got shape \[\]")]
    for strings, message in cases:
        for fn in (pre, pre.tokenize):
            with pytest.raises(tf.errors.InvalidArgumentError, match=message):
                fn(strings)
    # the runtime check, for a traced input of unknown shape
    traced = tf.function(pre.tokenize, input_signature=[tf.TensorSpec(None, tf.string)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not compatible with expected shape"):
        traced(tf.constant([["가", "나"]]))
    assert pre(tf.constant(["정상", ""]))["input_word_ids"].shape == (2, 16)
    # [batch, 1] (keras.Input(shape=(1,), dtype="string")) is one sentence a row
    for key, value in pre(tf.constant([["정상"], [""]])).items():
        np.testing.assert_array_equal(value, pre(tf.constant(["정상", ""]))[key])
