"""TensorFlow Lite exports (tfkosent/tflite.py): the flat buffers give encode()'s embeddings."""

import json
import os
import shutil
import unicodedata

import numpy as np
import pytest

SENTENCES = ["한국어 문장 임베딩을 만듭니다.", "오늘 날씨가 정말 좋네요!", "", "😀 emoji와 English",
             "가나다 " * 40, " 앞에 공백", "짧다"]


@pytest.fixture(scope="module")
def tflite_dir(tiny_prefixed_model_dir, tmp_path_factory):
    from tfkosent.tflite import export_tflite
    out = str(tmp_path_factory.mktemp("tflite") / "prefixed")
    export_tflite(tiny_prefixed_model_dir, out)
    return out


def test_sentence_model_matches_encode(tiny_prefixed_model_dir, tflite_dir):
    import tensorflow as tf

    from tfkosent import SentenceEncoder
    from tfkosent.tflite import TFLiteSentenceEncoder

    reference = SentenceEncoder.load(tiny_prefixed_model_dir)
    model = TFLiteSentenceEncoder.load(tflite_dir, num_threads=1)
    assert model.embedding_dim == reference.embedding_dim
    with pytest.warns(UserWarning, match="truncat"):   # "가나다 " * 40 is over 64 tokens
        expected = reference.encode(SENTENCES)
    # batch_size 2: several batches, sorted by length and put back in order; the same warning
    # (from the model's num_tokens output), naming the same sentence and the caller's line
    with pytest.warns(UserWarning, match="truncat") as caught:
        got = model.encode(SENTENCES, batch_size=2)
    assert "1 of 7 sentences are longer than 62 tokens" in str(caught[0].message)
    assert "(first: sentences[4], " in str(caught[0].message) and caught[0].filename == __file__
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.warns(UserWarning, match="truncat"):
        raw = reference.encode(SENTENCES, normalize_embeddings=False)
    with pytest.warns(UserWarning, match="truncat"):
        np.testing.assert_allclose(model.encode(SENTENCES, normalize_embeddings=False), raw, atol=1e-5)
    for one in (SENTENCES[0], np.array(SENTENCES[0]), tf.constant(SENTENCES[0]),
                SENTENCES[0].encode("utf-8")):
        got_one = model.encode(one)
        assert got_one.shape == (reference.embedding_dim,)
        np.testing.assert_allclose(got_one, expected[0], atol=1e-5)
    assert model.encode([]).shape == (0, reference.embedding_dim)
    with pytest.warns(UserWarning, match="start with 'query:'"):
        model.encode(["query: 접두사를 직접 쓴 문장"])


def test_sentence_model_composes_decomposed_hangul_and_refuses_bad_text(tflite_dir):
    from tfkosent.tflite import TFLiteSentenceEncoder

    model = TFLiteSentenceEncoder.load(tflite_dir, num_threads=1)
    nfc = "한 남자가 음식을 먹는다."
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    np.testing.assert_allclose(model.encode(nfd), model.encode(nfc), atol=1e-6)
    with pytest.raises(TypeError, match=r"sentences\[1\]"):
        model.encode(["좋다", 3])
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(["좋다"], batch_size=0)


def test_encoder_model_takes_the_preprocessors_ids(tiny_prefixed_model_dir, tflite_dir):
    """encoder.tflite (builtin ops only) on ids from the model's preprocessor; the record
    describes both files and the README names their signatures."""
    import tensorflow as tf

    from tfkosent import SentenceEncoder
    from tfkosent.model_dir import load_model_dir
    from tfkosent.tflite import ENCODER_MODEL_FILE, TFLITE_INFO_FILE, make_interpreter

    files = load_model_dir(tiny_prefixed_model_dir)
    inputs = {k: v.numpy() for k, v in files.build_preprocessor()(tf.constant(SENTENCES[:4])).items()}
    runner = make_interpreter(os.path.join(tflite_dir, ENCODER_MODEL_FILE)).get_signature_runner()
    got = runner(**inputs)["embeddings"]
    expected = SentenceEncoder.load(tiny_prefixed_model_dir).encode(SENTENCES[:4])
    np.testing.assert_allclose(got, expected, atol=1e-5)

    with open(os.path.join(tflite_dir, TFLITE_INFO_FILE), encoding="utf-8") as f:
        record = json.load(f)
    assert set(record["files"]) == {"sentence_encoder.tflite", "encoder.tflite"}
    assert record["files"]["encoder.tflite"]["custom_ops"] is None
    for info in record["files"].values():
        assert info["parity"]["max_abs_diff"] <= 1e-5
        assert info["bytes"] == os.path.getsize(os.path.join(tflite_dir, [
            k for k, v in record["files"].items() if v is info][0]))
    # The prefix ids are what the preprocessor puts before every text.
    own = files.build_preprocessor().tokenize(tf.constant(["가"])).to_list()[0]
    assert own[:len(record["prefix_ids"])] == record["prefix_ids"] and record["prefix_ids"]
    assert os.path.isfile(os.path.join(tflite_dir, record["tokenizer_file"]))
    readme = open(os.path.join(tflite_dir, "README.md"), encoding="utf-8").read()
    for name in ("serving_default", "sentences", "embeddings", "num_tokens", "input_word_ids", "NFC",
                 str(record["prefix_ids"])):
        assert name in readme


def test_roberta_packing_pooling_and_quantization(tiny_roberta_model_dir, tmp_path):
    """<s> ... </s> packing and another pooling; float16 and dynamic-range int8 weights make
    smaller files whose embeddings stay close (the parity record says how close)."""
    from tfkosent import SentenceEncoder
    from tfkosent.tflite import TFLiteSentenceEncoder, export_tflite

    with pytest.warns(UserWarning, match="truncat"):
        expected = SentenceEncoder.load(tiny_roberta_model_dir).encode(SENTENCES)
    sizes = {}
    for quantization in ("none", "float16", "dynamic"):
        out = str(tmp_path / quantization)
        record = export_tflite(tiny_roberta_model_dir, out, quantization=quantization,
                               variants=["sentence_encoder"])
        assert list(record["files"]) == ["sentence_encoder.tflite"]
        sizes[quantization] = record["files"]["sentence_encoder.tflite"]["bytes"]
        with pytest.warns(UserWarning, match="truncat"):
            got = TFLiteSentenceEncoder.load(out, num_threads=1).encode(SENTENCES)
        cosines = np.sum(got * expected, axis=1)
        if quantization == "none":
            np.testing.assert_allclose(got, expected, atol=1e-5)
        else:
            assert cosines.min() > 0.99, (quantization, cosines)
        assert record["files"]["sentence_encoder.tflite"]["parity"]["min_cosine"] > 0.99
    assert sizes["dynamic"] < sizes["float16"] < sizes["none"], sizes


def test_refusals(tiny_model_dir, tiny_prefixed_model_dir, tflite_dir, tmp_path):
    import tensorflow as tf

    from tfkosent.model_dir import load_model_dir
    from tfkosent.tflite import TFLiteSentenceEncoder, _check_tokenization, export_tflite

    with pytest.raises(ValueError, match="quantization"):
        export_tflite(tiny_model_dir, str(tmp_path / "a"), quantization="int4")
    with pytest.raises(ValueError, match="variants"):
        export_tflite(tiny_model_dir, str(tmp_path / "a"), variants=["tokenizer"])
    with pytest.raises(ValueError, match=r"seq_length must be in \[3, 64\]"):
        export_tflite(tiny_model_dir, str(tmp_path / "a"), seq_length=65)
    # An earlier export is replaced only with overwrite; another directory never.
    with pytest.raises(FileExistsError, match="overwrite"):
        export_tflite(tiny_model_dir, tflite_dir)
    (tmp_path / "scripts").mkdir()
    with pytest.raises(FileExistsError, match="not a tfkosent TFLite export"):
        export_tflite(tiny_model_dir, str(tmp_path / "scripts"), overwrite=True)

    # A lower-casing model has no string model (no TFLite op lower-cases); the ids model alone
    # is written, and TFLiteSentenceEncoder says what is missing.
    lower = tmp_path / "lower"
    shutil.copytree(tiny_model_dir, lower)
    config = json.loads((lower / "config.json").read_text(encoding="utf-8"))
    config["preprocess"]["lower_case"] = True
    (lower / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="lower-cases.*variants=\\('encoder',\\)"):
        export_tflite(str(lower), str(tmp_path / "lower_tflite"))
    assert not (tmp_path / "lower_tflite").exists()
    record = export_tflite(str(lower), str(tmp_path / "lower_tflite"), variants="encoder")
    assert list(record["files"]) == ["encoder.tflite"]
    with pytest.raises(ValueError, match="no sentence_encoder.tflite"):
        TFLiteSentenceEncoder.load(str(tmp_path / "lower_tflite"))
    with pytest.raises(FileNotFoundError, match="not a tfkosent TFLite export"):
        TFLiteSentenceEncoder.load(str(tmp_path / "scripts"))

    # The export refuses a prefix whose ids do not simply precede the text's.
    files = load_model_dir(tiny_prefixed_model_dir)
    prefix = files.build_preprocessor().tokenize(tf.constant([""])).to_list()[0]
    with pytest.raises(ValueError, match="TFLite tokenization of '가'"):
        _check_tokenization(files.build_preprocessor(), files.sentencepiece_proto, prefix[:-1], ["가"])


def test_cli(tiny_model_dir, tmp_path, capsys):
    from tfkosent import cli
    from tfkosent.tflite import QUANTIZATIONS, VARIANTS

    actions = {a.dest: a for a in cli.build_parser()._subparsers._group_actions[0].choices[
        "export-tflite"]._actions}
    assert tuple(actions["quantization"].choices) == QUANTIZATIONS
    assert tuple(actions["variant"].choices) == VARIANTS

    out = str(tmp_path / "cli")
    assert cli.main(["export-tflite", "--model", tiny_model_dir, "--out", out,
                     "--variant", "encoder", "--quantization", "dynamic"]) == 0
    printed = capsys.readouterr().out
    assert "encoder.tflite" in printed and "smallest cosine" in printed
    assert sorted(os.listdir(out)) == ["README.md", "encoder.tflite", "tflite_export.json",
                                       "tokenizer.model"]
    assert cli.main(["export-tflite", "--model", tiny_model_dir, "--out", out]) == 2
    assert "overwrite" in capsys.readouterr().err


def test_a_float_model_that_differs_is_not_written(tiny_model_dir, tmp_path, monkeypatch):
    from tfkosent import tflite

    monkeypatch.setattr(tflite, "_compare", lambda got, expected: {"max_abs_diff": 2e-5,
                                                                   "min_cosine": 1.0})
    with pytest.raises(RuntimeError, match="differ from the TF model's by 2e-05"):
        tflite.export_tflite(tiny_model_dir, str(tmp_path / "x"), variants=["encoder"])
    assert not (tmp_path / "x").exists()
    # Quantized weights are expected to differ: the record says by how much.
    record = tflite.export_tflite(tiny_model_dir, str(tmp_path / "x"), variants=["encoder"],
                                  quantization="float16")
    assert record["files"]["encoder.tflite"]["parity"]["max_abs_diff"] >= 2e-5


def test_sentence_encoder_loads_a_tflite_export(tiny_prefixed_model_dir, tflite_dir, tmp_path, capsys):
    """SentenceEncoder.load(TFLite export): encoder.tflite behind the model's own TF tokenizer and
    packing, so every SentenceEncoder method and `--model` in the CLI take it, with the model
    directory's token ids and embeddings."""
    import tensorflow as tf

    from tfkosent import SentenceEncoder, cli
    from tfkosent.tflite import TFLITE_INFO_FILE, export_tflite

    reference = SentenceEncoder.load(tiny_prefixed_model_dir)
    model = SentenceEncoder.load(tflite_dir, num_threads=1)
    with pytest.raises(ValueError, match="num_threads is for TFLite exports"):
        SentenceEncoder.load(tiny_prefixed_model_dir, num_threads=1)
    from tfkosent.model_dir import load_model_dir
    with pytest.raises(FileNotFoundError, match="is a tfkosent TFLite export, not a model directory"):
        load_model_dir(tflite_dir)    # e.g. tfkosent export --model TFLITE_DIR
    assert (model.embedding_dim, model.max_seq_length, model.text_prefix) == \
        (reference.embedding_dim, reference.max_seq_length, reference.text_prefix)
    assert model.tokenize(SENTENCES) == reference.tokenize(SENTENCES)
    with pytest.warns(UserWarning, match="truncat"):
        expected = reference.encode(SENTENCES, batch_size=3)
    with pytest.warns(UserWarning, match="truncat"):
        np.testing.assert_allclose(model.encode(SENTENCES, batch_size=3), expected, atol=1e-5)
    model.max_seq_length = 16
    reference.max_seq_length = 16
    with pytest.warns(UserWarning, match="longer than 14 tokens"):
        short = model.encode(SENTENCES, convert_to_tensor=True)
    assert isinstance(short, tf.Tensor)
    with pytest.warns(UserWarning, match="longer than 14 tokens"):
        np.testing.assert_allclose(short.numpy(), reference.encode(SENTENCES), atol=1e-5)
    np.testing.assert_allclose(model.encode(SENTENCES[:4], normalize_embeddings=False),
                               reference.encode(SENTENCES[:4], normalize_embeddings=False), atol=1e-5)
    for a, b in zip(model.encode(SENTENCES[:4], output_value="token_embeddings"),
                    reference.encode(SENTENCES[:4], output_value="token_embeddings")):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(model.similarity(SENTENCES[:2], SENTENCES[2:4]),
                               reference.similarity(SENTENCES[:2], SENTENCES[2:4]), atol=1e-5)

    assert cli.main(["similarity", "--model", tflite_dir, SENTENCES[0], SENTENCES[1]]) == 0
    assert "1.000" in capsys.readouterr().out

    # Without encoder.tflite, or from a tfkosent that did not record the model's config: refused.
    only_strings = str(tmp_path / "strings")
    export_tflite(tiny_prefixed_model_dir, only_strings, variants=["sentence_encoder"])
    with pytest.raises(ValueError, match="has no encoder.tflite.*TFLiteSentenceEncoder"):
        SentenceEncoder.load(only_strings)
    info_path = os.path.join(tflite_dir, TFLITE_INFO_FILE)
    with open(info_path, encoding="utf-8") as f:
        record = json.load(f)
    old = tmp_path / "old"
    shutil.copytree(tflite_dir, old)
    del record["model_config"]
    (old / TFLITE_INFO_FILE).write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ValueError, match="no usable model_config"):
        SentenceEncoder.load(str(old))


def test_card_snippets_run(tflite_dir, tiny_prefixed_model_dir, monkeypatch):
    """Every Python snippet of the export's README.md runs against the export and embeds as
    encode() does."""
    import re

    from tfkosent import SentenceEncoder

    readme = open(os.path.join(tflite_dir, "README.md"), encoding="utf-8").read()
    snippets = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(snippets) == 2
    monkeypatch.chdir(tflite_dir)                     # the plain-interpreter snippet's relative path
    expected = SentenceEncoder.load(tiny_prefixed_model_dir).encode(["한국어 문장"])
    for snippet in snippets:
        namespace = {}
        exec(snippet.replace('"THIS_DIRECTORY"', repr(tflite_dir)), namespace)  # noqa: S102
        assert "embeddings" in namespace or "out" in namespace
    np.testing.assert_allclose(namespace["out"], expected, atol=1e-5)
