"""The Python API: SentenceEncoder.load / encode / similarity, and its input checks."""

import json
import os
import re

import numpy as np
import pytest

from tfkosent import SentenceEncoder
from tfkosent.config import ConfigError
from tfkosent.model_dir import load_model_dir

SENTENCES = ["나는 밥을 먹는다.", "고양이가 책을 읽는다", "우리는 공원에서 축구를 한다 " * 20, "", "엄마가 커피를 마신다"]


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return SentenceEncoder.load(tiny_model_dir)


def test_encode_shapes_and_normalization(model):
    emb = model.encode(SENTENCES)
    assert emb.shape == (5, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    raw = model.encode(SENTENCES, normalize_embeddings=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    single = model.encode(SENTENCES[0])
    assert single.shape == (32,)
    np.testing.assert_allclose(single, emb[0], atol=1e-6)


def test_encode_returns_tensors_and_quantized_codes_like_sentence_transformers(model):
    import tensorflow as tf

    from tfkosent.quantization import dequantize_int8, quantize_embeddings
    emb = model.encode(SENTENCES)
    tensor = model.encode(SENTENCES, convert_to_tensor=True)
    assert isinstance(tensor, tf.Tensor) and tensor.dtype == tf.float32
    np.testing.assert_allclose(tensor.numpy(), emb, atol=1e-6)
    assert model.encode(SENTENCES[0], convert_to_tensor=True).shape == (32,)
    assert model.encode([], convert_to_tensor=True).shape == (0, 32)
    # binary: one bit per dimension (> 0), packed; int8 / uint8: 256 levels per dimension
    ubinary = model.encode(SENTENCES, precision="ubinary")
    assert ubinary.dtype == np.uint8 and ubinary.shape == (5, 4)
    np.testing.assert_array_equal(np.unpackbits(ubinary, axis=1), (emb > 0).astype(np.uint8))
    binary = model.encode(SENTENCES, precision="binary")
    np.testing.assert_array_equal(binary.astype(np.int16) + 128, ubinary)
    assert model.encode([], precision="binary").shape == (0, 4)
    int8 = model.encode(SENTENCES, precision="int8")
    assert int8.dtype == np.int8 and int8.shape == (5, 32)
    ranges = np.stack([emb.min(axis=0), emb.max(axis=0)])
    assert int8.min() == -128 and int8.max() == 127                 # the range is used in full
    step = (ranges[1] - ranges[0]) / 255
    assert np.all(np.abs(dequantize_int8(int8, ranges) - emb) <= step / 2 + 1e-6)
    np.testing.assert_array_equal(model.encode(SENTENCES, precision="uint8").astype(np.int16) - 128, int8)
    # a calibration set fixes the scale; values outside it are clipped
    wide = quantize_embeddings(emb, "uint8", calibration_embeddings=np.vstack([emb * 3, emb * -3]))
    assert 0 < wide.min() and wide.max() < 255
    clipped = quantize_embeddings(emb * 10, "uint8", ranges=ranges)
    assert clipped.min() == 0 and clipped.max() == 255             # clipped, not wrapped around
    with pytest.raises(ValueError, match="precision must be one of float32, int8, uint8, binary, ubinary"):
        model.encode(SENTENCES, precision="int4")
    with pytest.raises(ValueError, match="not a multiple of 8"):
        quantize_embeddings(np.ones((2, 12)), "binary")
    # a NaN has no code (it became bit 0 or an arbitrary int8), and swapped ranges make every code 0
    nan = emb.copy()
    nan[2, 1] = np.nan
    for precision in ("int8", "ubinary"):
        with pytest.raises(ValueError, match=r"embeddings\[2\] has a NaN or infinite value"):
            quantize_embeddings(nan, precision)
    with pytest.raises(ValueError, match=r"calibration_embeddings\[2\] has a NaN"):
        quantize_embeddings(emb, "int8", calibration_embeddings=nan)
    with pytest.raises(ValueError, match=r"dimension 0 has min .* > max"):
        quantize_embeddings(emb, "uint8", ranges=ranges[::-1])
    # identical sentences: their in-batch range is float noise, which must not become codes
    twice = model.encode([SENTENCES[0], SENTENCES[0]] + SENTENCES[1:2])
    codes = quantize_embeddings(twice, "int8")
    np.testing.assert_array_equal(codes[0], codes[1])
    with pytest.raises(ValueError, match=r"these 2 embeddings have none \(identical rows"):
        model.encode([SENTENCES[0], SENTENCES[0]], precision="int8")


def test_encode_is_independent_of_batching_and_order(model):
    full = model.encode(SENTENCES, batch_size=64)
    one_by_one = np.stack([model.encode([s])[0] for s in SENTENCES])
    reversed_ = model.encode(SENTENCES[::-1], batch_size=2)[::-1]
    np.testing.assert_allclose(one_by_one, full, atol=1e-5)
    np.testing.assert_allclose(reversed_, full, atol=1e-5)


def test_long_input_is_truncated_not_rejected(model):
    ids = model.tokenize(["가나다 " * 10000])[0]
    assert len(ids) > model.max_seq_length
    with pytest.warns(UserWarning, match=rf"1 of 2 sentences are longer than 62 tokens \(64 with the special "
                                         rf"tokens\) and were truncated \(first: sentences\[1\], "
                                         rf"{len(ids)} tokens\)"):
        assert model.encode(["짧다", "가나다 " * 10000]).shape == (2, 32)


def test_truncation_warning_counts_the_tokens_left_for_the_text(model, recwarn):
    """max_seq_length 64 holds [CLS] + 62 tokens + [SEP]: 63 tokens are truncated, and the
    warning's numbers say so (not "longer than 64 ... 63 tokens")."""
    fits, over = "가" * 61, "가" * 62
    assert [len(ids) for ids in model.tokenize([fits, over])] == [62, 63]
    model.encode(fits)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    with pytest.warns(UserWarning, match=r"^1 of 1 sentences are longer than 62 tokens \(64 with the "
                                         r"special tokens\) and were truncated \(first: sentences\[0\], "
                                         r"63 tokens\)$"):
        model.encode(over)


def test_warnings_name_the_callers_argument_and_point_at_the_caller(model):
    import warnings

    long = "가나다 " * 100

    def caught(call):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            call()
        return [(str(x.message), x.filename) for x in w if issubclass(x.category, UserWarning)]

    for call, name in [(lambda: model.encode(["a", long]), "sentences[1]"),
                       (lambda: model.similarity(["a"], ["b", long]), "b[1]"),
                       (lambda: model.similarity([long]), "a[0]"),
                       (lambda: model.search(long, ["a", "b"]), "queries[0]"),
                       (lambda: model.search("a", ["a", "b", "c", long]), "corpus[3]"),
                       (lambda: model.paraphrase_mining(["a", long]), "sentences[1]")]:
        (message, filename), = caught(call)
        assert f"(first: {name}, " in message and filename == __file__, (message, filename)


def test_no_warning_for_ordinary_input(model, recwarn):
    model.encode([s for s in SENTENCES if len(model.tokenize(s)[0]) < model.max_seq_length - 2])
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_text_the_model_prefixes_itself_is_flagged(tiny_model_dir, tmp_path):
    """A model with e5's "query: " prefix, given text that already has it, warns."""
    import shutil

    prefixed = tmp_path / "prefixed"
    shutil.copytree(tiny_model_dir, prefixed)
    config = json.loads((prefixed / "config.json").read_text())
    config["preprocess"]["text_prefix"] = "query: "
    (prefixed / "config.json").write_text(json.dumps(config))
    model = SentenceEncoder.load(str(prefixed))
    assert model.text_prefix == "query: " and model.get_sentence_embedding_dimension() == 32
    with pytest.warns(UserWarning, match=r"1 of 2 sentences \(first: sentences\[1\]\) start with 'query:'"):
        model.encode(["가나다", "query: 가나다"])
    # e5's document prompt, typed by hand, became "query: passage: ..." without a word
    config["metadata"].update(query_prefix="query: ", passage_prefix="passage: ")
    (prefixed / "config.json").write_text(json.dumps(config))
    model = SentenceEncoder.load(str(prefixed))
    with pytest.warns(UserWarning, match=r"start with 'passage:'; this model's preprocessor puts 'query:'"):
        model.encode_document(["passage: 가나다", "라마"])


def test_sentence_transformers_names(model):
    """What code ported from sentence-transformers calls: max_seq_length is settable (lower is
    faster on long texts), convert_to_numpy / output_value, similarity_fn_name,
    encode_query / encode_document (the same embedding: the model is symmetric)."""
    import tensorflow as tf

    full = model.encode(SENTENCES)
    np.testing.assert_allclose(model.encode_query(SENTENCES), full, atol=1e-6)
    np.testing.assert_allclose(model.encode_document(SENTENCES, batch_size=2), full, atol=1e-6)
    assert isinstance(model.encode(SENTENCES[:2], convert_to_numpy=False), tf.Tensor)
    assert model.encode(SENTENCES[:2], convert_to_numpy=True, output_value="sentence_embedding").shape == (2, 32)
    with pytest.raises(ValueError, match="output_value must be one of 'sentence_embedding', "
                                         "'token_embeddings', got 'embeddings'"):
        model.encode(SENTENCES, output_value="embeddings")
    with pytest.raises(TypeError, match="prompt_name"):
        model.encode_query(SENTENCES, prompt_name="query")
    assert model.similarity_fn_name == "cosine"
    default = model.max_seq_length
    try:
        model.max_seq_length = 8                       # 6 tokens + the 2 special tokens
        with pytest.warns(UserWarning, match=r"longer than 6 tokens \(8 with the special tokens\)"):
            cut = model.encode([SENTENCES[2], SENTENCES[2] + " 엄마가 커피를 마신다"])
        np.testing.assert_allclose(cut[0], cut[1], atol=1e-6)     # both cut to the same 6 tokens
        model.max_seq_length = default
        assert not np.allclose(model.encode(SENTENCES[2]), cut[0], atol=1e-3)
        for bad in (default + 1, 2, 0):
            with pytest.raises(ValueError, match="max_seq_length must"):
                model.max_seq_length = bad
    finally:
        model.max_seq_length = default
    assert model.max_seq_length == default


def test_token_embeddings(model, tiny_model_dir, tiny_export_dir):
    """output_value="token_embeddings", as in sentence-transformers: per sentence the last
    layer's states of its tokens (special tokens included, padding not), the same from a model
    directory and its export, whatever the batch; their mean is the mean-pooled embedding."""
    import tensorflow as tf

    from tfkosent.model_dir import load_model_dir

    files = load_model_dir(tiny_model_dir)
    assert files.config.encoder.pooling == "mean"
    with pytest.warns(UserWarning, match="truncated"):      # SENTENCES[2], as for embeddings
        tokens = model.encode(SENTENCES, output_value="token_embeddings", batch_size=2)
    assert isinstance(tokens, list) and len(tokens) == len(SENTENCES)
    with pytest.warns(UserWarning, match="truncated"):
        pooled = model.encode(SENTENCES, normalize_embeddings=False)
    encoder, preprocessor = files.build_encoder(), files.build_preprocessor()
    for i, (sentence, states) in enumerate(zip(SENTENCES, tokens)):
        assert states.dtype == np.float32
        assert states.shape == (min(len(model.tokenize(sentence)[0]) + 2, model.max_seq_length), 32)
        np.testing.assert_allclose(states.mean(axis=0), pooled[i], atol=1e-5)
        alone = encoder(preprocessor.bert_pack_inputs([preprocessor.tokenize([sentence])],
                                                      seq_length=len(states)))["sequence_output"]
        np.testing.assert_allclose(states, alone[0].numpy(), atol=1e-5)
    with pytest.warns(UserWarning, match="truncated"):
        exported = SentenceEncoder.load(tiny_export_dir).encode(SENTENCES, output_value="token_embeddings")
    for a, b in zip(tokens, exported):
        np.testing.assert_allclose(a, b, atol=1e-5)
    one = model.encode(SENTENCES[0], output_value="token_embeddings", convert_to_tensor=True)
    assert isinstance(one, tf.Tensor) and one.shape == tokens[0].shape
    assert model.encode([], output_value="token_embeddings") == []
    with pytest.raises(ValueError, match="token embeddings are float32 only"):
        model.encode(SENTENCES, output_value="token_embeddings", precision="int8")


def test_dequantize_int8_names_ranges_of_the_wrong_shape():
    from tfkosent.quantization import dequantize_int8
    codes = np.zeros((4, 10), np.int8)
    for ranges, got in ((np.zeros((3, 10)), r"got shape \(3, 10\)"), (None, "got None"),
                        (np.zeros((2, 9)), r"got shape \(2, 9\)")):
        with pytest.raises(ValueError, match=r"ranges must be \[2, 10\] \(the min row and max row "
                                             r"the codes were made with\), " + got):
            dequantize_int8(codes, ranges)


def test_max_seq_length_leaves_room_for_a_text_token_after_the_prefix(tiny_prefixed_model_dir):
    """With e5's "query: " the lowest max_seq_length counts the tokens every text starts with
    (the prefix's, and here a lone "▁" after it): below it every sentence packed to the special
    tokens and those, and all embedded the same. At it, different sentences differ."""
    import warnings

    model = SentenceEncoder.load(tiny_prefixed_model_dir)
    rows = model.tokenize(["가나다", "a", "1"])
    prefix = next(i for i in range(min(map(len, rows))) if len({r[i] for r in rows}) > 1)
    assert prefix >= len(model.tokenize("")[0]) > 0
    low = 2 + prefix + 1                                   # [CLS] [SEP], the prefix, one token
    with pytest.raises(ValueError, match=rf"max_seq_length must be in \[{low}, 64\] \(the special "
                                         rf"tokens, the {prefix} tokens of the model's prefix "
                                         rf"'query: ' plus one text token; the model's maximum\), "
                                         rf"got {low - 1}"):
        model.max_seq_length = low - 1
    model.max_seq_length = low
    assert model.max_seq_length == low
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # truncated, on purpose
        first, second = model.encode(["나는 밥을 먹는다", "고양이가 책을 읽는다"])
    assert np.abs(first - second).max() > 1e-3


def test_one_sentence_as_a_0d_array_or_a_string_tensor(model):
    import tensorflow as tf

    one = model.encode(SENTENCES[0])
    assert model.encode(np.array(SENTENCES[0])).shape == (32,)        # was one row per character
    np.testing.assert_allclose(model.encode(np.array(SENTENCES[0])), one, atol=1e-6)
    np.testing.assert_allclose(model.encode(tf.constant(SENTENCES[0])), one, atol=1e-6)
    np.testing.assert_allclose(model.encode(tf.constant(SENTENCES[:2]))[0], one, atol=1e-6)
    with pytest.raises(TypeError, match=r"1-D sequence of str, got an array of shape \(1, 2\)"):
        model.encode(np.array([SENTENCES[:2]]))


def test_similarity_matrix(model):
    sim = model.similarity(SENTENCES[:3], SENTENCES[:2])
    assert sim.shape == (3, 2)
    np.testing.assert_allclose(np.diag(sim[:2, :2]), 1.0, atol=1e-5)
    np.testing.assert_allclose(model.similarity(SENTENCES[:2]), model.similarity(SENTENCES[:2]).T, atol=1e-6)


def test_empty_batch(model):
    out = model.encode([])
    assert out.shape == (0, 32) and out.dtype == np.float32


@pytest.mark.parametrize("bad, error, fragment", [
    (None, TypeError, "got None"),
    (["ok", None], TypeError, r"sentences\[1\]"),
    (["ok", "ok", 3], TypeError, r"sentences\[2\] must be a str, got int"),
    ([b"\xff\xfe"], ValueError, r"sentences\[0\] is not valid UTF-8"),
    (42, TypeError, "got int"),
    (["ok", "bad\udcff"], ValueError, r"sentences\[1\] is not valid UTF-8 text .*'\\udcff' at character 3"),
    ({"a": 1}, TypeError, r"got dict \(pass list"),
    ({"a"}, TypeError, "got set"),
    (["ok", np.zeros(5000)], TypeError, r"sentences\[1\] must be a str, got ndarray \(array\(\[0\., .{,60}\)$"),
])
def test_bad_python_inputs_name_the_index(model, bad, error, fragment):
    with pytest.raises(error, match=fragment):
        model.encode(bad)


def test_bytes_are_utf8_text(model):
    np.testing.assert_allclose(model.encode("나는 밥을 먹는다.".encode()), model.encode(SENTENCES[0]), atol=1e-6)
    np.testing.assert_allclose(model.encode([b"abc", "abc"])[0], model.encode("abc"), atol=1e-6)


def test_similarity_of_embeddings_points_to_the_matrix_product(model):
    with pytest.raises(TypeError, match=r"similarity's a must be sentences.*emb_a @ emb_b.T"):
        model.similarity(model.encode(SENTENCES[:2]), SENTENCES[:1])
    with pytest.raises(TypeError, match=r"similarity's b must be sentences \(str\), got a numeric tf.Tensor "
                                        r"of shape \(2, 32\).*emb_a @ emb_b.T"):
        model.similarity(SENTENCES[:1], model.encode(SENTENCES[:2], convert_to_tensor=True))


def test_search_refuses_quantized_corpus_embeddings(model):
    codes = model.encode(SENTENCES, precision="int8")
    with pytest.raises(ValueError, match=r"corpus_embeddings must be float embeddings, got dtype int8; "
                                         r".*dequantize_int8"):
        model.search("가나다", corpus_embeddings=codes)
    tensor = model.encode(SENTENCES, convert_to_tensor=True)
    assert model.search("가나다", corpus_embeddings=tensor) == model.search("가나다", SENTENCES)


def test_loading_a_cross_encoder_names_the_method_that_loads_it(model, tmp_path):
    from tfkosent.cross_encoder import CrossEncoder

    path = CrossEncoder.from_model_dir(model.path, allow_new_head=True).save(str(tmp_path / "ce"))
    with pytest.raises(ValueError, match=r"is a cross-encoder .*: load it with "
                                         r"tfkosent\.CrossEncoder\.load\("):
        SentenceEncoder.load(path)
    assert CrossEncoder.load(path).predict(("가", "나")).shape == ()    # what the message says works


def test_bad_batch_size(model):
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(["a"], batch_size=0)


def test_batch_size_is_any_positive_integer_but_not_bool(model):
    """One rule with search's top_k and CrossEncoder.predict's batch_size: numpy integers
    count, bool does not."""
    np.testing.assert_allclose(model.encode(SENTENCES, batch_size=np.int64(2)), model.encode(SENTENCES),
                               atol=1e-5)
    for bad in (True, 2.0, -1, np.int32(0), "4"):
        with pytest.raises(ValueError, match=rf"^batch_size must be a positive int, got {re.escape(repr(bad))}$"):
            model.encode(["a"], batch_size=bad)
    with pytest.raises(ValueError, match="^batch_size must be a positive int"):
        model.similarity(["a"], batch_size=True)


def test_int8_of_fewer_than_two_sentences_needs_calibration_embeddings(model):
    """The int8 / uint8 scale of one embedding alone is min == max: refused, with what to do
    instead; calibration_embeddings gives the scale."""
    from tfkosent.quantization import quantize_embeddings

    for precision in ("int8", "uint8"):
        for one in ("가나다", ["가나다"]):
            with pytest.raises(ValueError, match=rf"precision '{precision}' scales .*one sentence has none"
                                                 r".*calibration_embeddings=.*tfkosent\.quantization\."
                                                 r"quantize_embeddings"):
                model.encode(one, precision=precision)
    calibration = model.encode(SENTENCES)
    codes = model.encode("가나다", precision="int8", calibration_embeddings=calibration)
    assert codes.shape == (32,) and codes.dtype == np.int8 and len(np.unique(codes)) > 2
    np.testing.assert_array_equal(
        codes, quantize_embeddings(model.encode(["가나다"]), "int8", calibration_embeddings=calibration)[0])
    batch = model.encode(SENTENCES[:2], precision="uint8", calibration_embeddings=calibration)
    np.testing.assert_array_equal(
        batch, quantize_embeddings(calibration[:2], "uint8", calibration_embeddings=calibration))
    with pytest.raises(ValueError, match=r"precision 'binary' has none"):
        model.encode(SENTENCES, precision="binary", calibration_embeddings=calibration)
    with pytest.raises(ValueError, match=r"calibration_embeddings must be \[n >= 2, 32\], got shape \(1, 32\)"):
        model.encode(SENTENCES, precision="int8", calibration_embeddings=calibration[:1])
    with pytest.raises(ValueError, match=r"1 embedding has none .*pass calibration_embeddings"):
        quantize_embeddings(calibration[:1], "int8")
    assert quantize_embeddings(calibration[:0], "int8").shape == (0, 32)
    assert model.encode([], precision="int8").shape == (0, 32)


def test_constructor_points_to_load(tiny_model_dir):
    with pytest.raises(TypeError, match=r"SentenceEncoder.load\("):
        SentenceEncoder(tiny_model_dir)


def test_load_errors(tmp_path, tiny_model_dir):
    with pytest.raises(FileNotFoundError):
        SentenceEncoder.load(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="neither"):
        SentenceEncoder.load(str(tmp_path))
    bad = tmp_path / "bad"
    bad.mkdir()
    cfg = json.load(open(os.path.join(tiny_model_dir, "config.json")))
    cfg["encoder"]["hidden_size"] = 48
    (bad / "config.json").write_text(json.dumps(cfg))
    for name in ("weights.npz", "tokenizer.model"):
        (bad / name).write_bytes(open(os.path.join(tiny_model_dir, name), "rb").read())
    with pytest.raises(ValueError, match="weights.npz.*expects"):
        SentenceEncoder.load(str(bad))
    (bad / "weights.npz").write_bytes(b"PK\x03\x04truncated")
    with pytest.raises(ConfigError, match="weights.npz"):
        load_model_dir(str(bad))


def test_survives_tf_random_set_seed(tiny_model_dir):
    """tf.random.set_seed clears TF's eager kernel cache, which owns tensorflow_text's
    SentencePiece model; encoding must recover instead of raising NotFoundError."""
    import tensorflow as tf
    from tfkosent.layers.tokenizer import SentencepieceTokenizer

    model = SentenceEncoder.load(tiny_model_dir)
    before = model.encode(SENTENCES)
    tf.random.set_seed(1234)
    np.testing.assert_allclose(model.encode(SENTENCES), before, atol=1e-6)
    tok = model._backend.preprocessor.tokenizer
    assert isinstance(tok, SentencepieceTokenizer)
    ids = tok(tf.constant(["나는 밥을 먹는다."])).to_list()
    tf.random.set_seed(99)
    assert tok(tf.constant(["나는 밥을 먹는다."])).to_list() == ids


def test_default_model_resolution(tmp_path, monkeypatch, tiny_model_dir):
    import shutil
    from tfkosent import sentence_encoder as se

    monkeypatch.delenv("TFKOSENT_DEFAULT_MODEL", raising=False)
    monkeypatch.setenv("TFKOSENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(se, "DEFAULT_MODEL_DIR", str(tmp_path / "no_shipped_model"))
    with pytest.raises(FileNotFoundError, match="make demo"):
        se.default_model_path()
    shutil.copytree(tiny_model_dir, se.zero_shot_e5_path())  # what `make demo` caches
    assert se.default_model_path() == se.zero_shot_e5_path()
    assert SentenceEncoder.load().encode("가").shape == (32,)
    monkeypatch.setenv("TFKOSENT_DEFAULT_MODEL", tiny_model_dir)
    assert se.default_model_path() == tiny_model_dir


def _stdin(monkeypatch, data: bytes):
    import io
    import sys
    import types
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))


def test_cli_encode_reads_stdin_lines(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from tfkosent.cli import main

    _stdin(monkeypatch, "나는 밥을 먹는다.\r\n\n고양이가 책을 읽는다\n\n".encode())
    out = tmp_path / "emb.npy"
    assert main(["encode", "--model", tiny_model_dir, "--output", str(out)]) == 0
    expected = SentenceEncoder.load(tiny_model_dir).encode(["나는 밥을 먹는다.", "", "고양이가 책을 읽는다"])
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)  # CR dropped, trailing blanks dropped


@pytest.mark.parametrize("command", ["encode", "search"])
def test_cli_stdin_that_is_not_utf8_names_the_line(tiny_model_dir, tmp_path, monkeypatch, capsys, command):
    from tfkosent.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("가나다\n", encoding="utf-8")
    _stdin(monkeypatch, "가\n".encode() + b"\xff\n")
    extra = ["--corpus", str(corpus)] if command == "search" else []
    assert main([command, "--model", tiny_model_dir] + extra) == 2
    assert "<stdin>:2: not valid UTF-8" in capsys.readouterr().err


def test_cli_argument_that_is_not_utf8_names_it(tiny_model_dir, capsys):
    from tfkosent.cli import main

    # what Python makes of the command-line bytes b"\xff" (surrogateescape)
    assert main(["encode", "--model", tiny_model_dir, "가", b"\xff".decode("utf-8", "surrogateescape")]) == 2
    assert "sentences[1] is not valid UTF-8 text" in capsys.readouterr().err


def test_cli_similarity_reads_stdin_and_empty_input_is_an_error(tiny_model_dir, monkeypatch, capsys):
    from tfkosent.cli import main

    _stdin(monkeypatch, "나는 밥을 먹는다.\n고양이가 책을 읽는다\n".encode())
    assert main(["similarity", "--model", tiny_model_dir, "--batch-size", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 3 and rows[1].split()[-2] == "1.0000" and rows[2].split()[-1] == "1.0000"
    for command in ("encode", "similarity"):
        _stdin(monkeypatch, b"")
        assert main([command, "--model", tiny_model_dir]) == 2
        assert "no sentences: give them as arguments or one per line on stdin" in capsys.readouterr().err


def test_cli_encode_writes_exactly_the_output_path(tiny_model_dir, tmp_path, capsys):
    from tfkosent.cli import main

    out = tmp_path / "embx"                          # no .npy: np.save(name) would add one
    assert main(["encode", "--model", tiny_model_dir, "--output", str(out), "가"]) == 0
    assert f"wrote 1 x 32 float32 embeddings to {out}\n" == capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embx"]
    np.testing.assert_allclose(np.load(out), SentenceEncoder.load(tiny_model_dir).encode(["가"]), atol=1e-6)


def test_cli_warnings_are_one_line_in_the_commands_voice(tiny_model_dir):
    """In a fresh process (pytest records warnings instead of showing them): a truncation warning
    reads `tfkosent encode: warning: ...`, not Python's file:line + UserWarning + source line."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "tfkosent.cli", "encode", "--model", tiny_model_dir,
                           "가나다 " * 100], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    warning = [l for l in proc.stderr.splitlines() if "truncated" in l]
    assert len(warning) == 1 and warning[0].startswith("tfkosent encode: warning: 1 of 1 sentences"), proc.stderr
    assert "UserWarning" not in proc.stderr and ".py:" not in proc.stderr, proc.stderr


def test_cli_encode_clips_long_sentences_in_its_preview(tiny_model_dir, capsys):
    from tfkosent.cli import main

    assert main(["encode", "--model", tiny_model_dir, "가" * 500]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("가" * 28 + "...\t[") and line.endswith("(dim 32)")  # 60 columns


def test_cli_similarity_table_lines_up_with_hangul(tiny_model_dir, capsys):
    from tfkosent.cli import _display_width, main

    assert main(["similarity", "--model", tiny_model_dir, "한 남자가 음식을 먹는다.", "a man eats"]) == 0
    rows = capsys.readouterr().out.splitlines()
    # every row's scores end in the same terminal column (Hangul takes two)
    assert len({_display_width(r) for r in rows}) == 1, rows


def test_cli_version(capsys):
    from tfkosent import __version__
    from tfkosent.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"tfkosent {__version__}\n"


def test_load_names_a_path_argument_that_is_not_one():
    with pytest.raises(TypeError,
                       match=r"SentenceEncoder.load: path must be a str or os.PathLike .*got int 123"):
        SentenceEncoder.load(123)
    with pytest.raises(ValueError, match=r"SentenceEncoder.load: path is empty"):  # not the current directory
        SentenceEncoder.load("")


@pytest.mark.parametrize("content, message", [(b"", r"not a SentencePiece model \(the file is empty\)"),
                                              (bytes(range(256)) * 20, r"not a SentencePiece model")])
def test_corrupt_tokenizer_model_is_named(tiny_model_dir, tmp_path, capsys, content, message):
    import shutil
    from tfkosent.cli import main

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "tokenizer.model").write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(str(model_dir / "tokenizer.model")) + ": " + message):
        SentenceEncoder.load(str(model_dir))
    assert main(["encode", "--model", str(model_dir), "가"]) == 2
    assert f"{model_dir / 'tokenizer.model'}: not a SentencePiece model" in capsys.readouterr().err


def test_cli_bad_paths_are_one_error_line_naming_them(tiny_model_dir, tmp_path, capsys):
    """Output paths are checked before the model loads (--model names none here), input paths
    that are directories are named as such; an OSError is one error line, exit status 2."""
    from tfkosent.cli import main

    (tmp_path / "adir").mkdir()
    (tmp_path / "emb.npy.json").mkdir()
    ok = tmp_path / "ok.txt"
    ok.write_text("가나다\n", encoding="utf-8")
    d, f, nomodel = str(tmp_path / "adir"), str(ok), str(tmp_path / "no-such-model")
    cases = [
        (["encode", "가", "--model", nomodel, "--output", d], f"--output {d} is a directory, not a file"),
        (["encode", "가", "--model", nomodel, "--output", f + "/x.npy"],
         f"--output {f}/x.npy: its parent {f} is a file, not a directory"),
        (["search", "가", "--corpus", f, "--model", nomodel,
          "--corpus-embeddings", str(tmp_path / "emb.npy")],
         f"--corpus-embeddings {tmp_path / 'emb.npy.json'} is a directory, not a file"),
        (["search", "가", "--corpus", f, "--model", nomodel, "--corpus-embeddings", f + "/x.npy"],
         f"--corpus-embeddings {f}/x.npy: its parent {f} is a file"),
        (["evaluate", nomodel, "--pairs", f, "--json", d], f"--json {d} is a directory, not a file"),
        (["evaluate", nomodel, "--pairs", f, "--json", f + "/r.json"],
         f"--json {f}/r.json: its parent {f} is a file"),
        (["evaluate", nomodel, "--pairs", f, "--plot", f], f"--plot {f} is a file, not a directory"),
        (["export", "--model", nomodel, "--out", f + "/exp"], f"--out {f}/exp: its parent {f} is a file"),
        (["export", "--model", nomodel, "--out", f], f"--out {f} is a file, not a directory"),
        (["search", "가", "--corpus", d, "--model", nomodel], f"{d}: a directory, not a corpus file"),
        (["evaluate", tiny_model_dir, "--pairs", d], f"pairs file {d} is a directory, not a file"),
        (["silver-stats", d], f"{d} is a directory, not a file"),
        (["silver", "--bi-encoder", nomodel, "--cross-encoder", nomodel, "--out", f],
         f"--out {f} is a file, not a directory"),
        (["prune-ffn", nomodel, f + "/pruned", "--intermediate-size", "8"],
         f"OUT {f}/pruned: its parent {f} is a file"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err  # (evaluate warns first that the tiny model is untrained)
        assert err.splitlines()[-1].startswith(f"tfkosent {argv[0]}: error: {message}"), (argv, err)
        assert "Traceback" not in err, err


def test_cli_turns_any_oserror_into_one_line_but_not_other_errors(monkeypatch, capsys):
    import tfkosent.cli as cli

    def fail(error):
        def command(args):
            raise error
        return command

    monkeypatch.setattr(cli, "cmd_similarity", fail(PermissionError(13, "Permission denied", "/x/y")))
    assert cli.main(["similarity", "가"]) == 2
    assert capsys.readouterr().err == "tfkosent similarity: error: [Errno 13] Permission denied: '/x/y'\n"
    monkeypatch.setattr(cli, "cmd_similarity", fail(KeyError("a bug")))
    with pytest.raises(KeyError):  # a bug keeps its traceback
        cli.main(["similarity", "가"])


@pytest.mark.parametrize("argv, flag", [
    (["encode", "가", "--batch-size", "0"], "--batch-size"),
    (["similarity", "가", "--batch-size", "-1"], "--batch-size"),
    (["search", "가", "--corpus", "c.txt", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "default", "--batch-size", "0"], "--batch-size"),
    (["silver", "--bi-encoder", "b", "--scorer", "s", "--out", "o", "--random", "-1"], "--random"),
    (["silver", "--bi-encoder", "b", "--scorer", "s", "--out", "o", "--neighbors", "-1"], "--neighbors"),
    (["silver", "--bi-encoder", "b", "--scorer", "s", "--out", "o", "--shard-size", "0"], "--shard-size"),
    (["silver", "--bi-encoder", "b", "--scorer", "s", "--out", "o", "--batch-size", "0"], "--batch-size"),
    (["prune-ffn", "m", "o", "--intermediate-size", "8", "--limit", "0"], "--limit"),
])
def test_cli_refuses_bad_counts_when_parsing_naming_the_flag(capsys, argv, flag):
    from tfkosent.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and f"error: argument {flag}: expected a " in capsys.readouterr().err
