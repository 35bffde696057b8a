"""FFN pruning (tfkosent/training/prune.py): which neurons go, and what the pruned model keeps."""

import numpy as np
import pytest

from tfkosent import SentenceEncoder
from tfkosent.model_dir import load_model_dir, save_model_dir
from tfkosent.testing import korean_sentences
from tfkosent.training.prune import ffn_activation_importance, prune_ffn, prune_model_ffn

SENTENCES = korean_sentences(40, seed=3)


def _with_dead_neuron(tiny_model_dir, out, neuron=5):
    """tiny_model_dir with FFN neuron `neuron` of layer 0 given the LARGEST weights of its layer
    but a bias of -1e4: GELU outputs 0 for it on every token, so it adds nothing."""
    files = load_model_dir(tiny_model_dir)
    w = dict(files.weights)
    w_in, w_out = w["layer_0/intermediate/kernel"].copy(), w["layer_0/output/kernel"].copy()
    w_in[:, neuron] *= 50.0
    w_out[neuron] *= 50.0
    bias = w["layer_0/intermediate/bias"].copy()
    bias[neuron] = -1e4
    w.update({"layer_0/intermediate/kernel": w_in, "layer_0/output/kernel": w_out,
              "layer_0/intermediate/bias": bias})
    return save_model_dir(out, files.config, w, sentencepiece_proto=files.sentencepiece_proto)


def test_activation_importance_finds_a_neuron_that_never_fires(tiny_model_dir, tmp_path):
    model = _with_dead_neuron(tiny_model_dir, str(tmp_path / "dead"))
    config = load_model_dir(model).config.encoder
    importance = ffn_activation_importance(model, SENTENCES)
    assert [i.shape for i in importance] == [(config.intermediate_size,)] * config.num_layers
    assert importance[0][5] == 0.0 and (np.delete(importance[0], 5) > 0).all()
    # by weights the dead neuron is the MOST important one: the criteria disagree
    from tfkosent.training.prune import ffn_weight_importance
    assert np.argmax(ffn_weight_importance(load_model_dir(model).weights, config.num_layers)[0]) == 5


def test_pruning_by_activations_drops_the_dead_neuron_and_keeps_the_embeddings(tiny_model_dir, tmp_path):
    model = _with_dead_neuron(tiny_model_dir, str(tmp_path / "dead"))
    width = load_model_dir(model).config.encoder.intermediate_size
    # keep all but one neuron per layer: layer 0 loses the dead one (nothing changes there);
    # layer 1 loses its least active one
    by_act = prune_model_ffn(model, str(tmp_path / "act"), width - 1, by="activations",
                             sentences=SENTENCES, sources=["test"])
    files = load_model_dir(by_act)
    assert files.config.encoder.intermediate_size == width - 1
    assert files.config.metadata["ffn_pruned_from"] == width
    assert files.config.metadata["ffn_pruning"] == {"by": "activations", "sentences": 40, "sources": ["test"]}
    assert -1e4 not in files.weights["layer_0/intermediate/bias"]
    by_weights = prune_model_ffn(model, str(tmp_path / "w"), width - 1, by="weights")
    assert -1e4 in load_model_dir(by_weights).weights["layer_0/intermediate/bias"]
    full = SentenceEncoder.load(model).encode(SENTENCES)
    err_act = np.abs(SentenceEncoder.load(by_act).encode(SENTENCES) - full).max()
    err_w = np.abs(SentenceEncoder.load(by_weights).encode(SENTENCES) - full).max()
    assert err_act < err_w


def test_prune_ffn_with_given_importance_and_bad_arguments(tiny_model_dir, tmp_path):
    w = load_model_dir(tiny_model_dir).weights
    width = w["layer_0/intermediate/bias"].shape[0]
    importance = [np.arange(width, dtype=float), np.arange(width, 0, -1, dtype=float)]
    out = prune_ffn(w, 2, 2, importance)
    np.testing.assert_array_equal(out["layer_0/intermediate/bias"], w["layer_0/intermediate/bias"][-2:])
    np.testing.assert_array_equal(out["layer_1/output/kernel"], w["layer_1/output/kernel"][:2])
    with pytest.raises(ValueError, match=r"importance of layer 0 has shape \(3,\)"):
        prune_ffn(w, 2, 2, [np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match="intermediate_size must be in 1.."):
        prune_model_ffn(tiny_model_dir, str(tmp_path / "x"), width, by="weights")
    with pytest.raises(ValueError, match="needs sentences"):
        prune_model_ffn(tiny_model_dir, str(tmp_path / "x"), 2)
    with pytest.raises(ValueError, match="by must be"):
        prune_model_ffn(tiny_model_dir, str(tmp_path / "x"), 2, by="magnitude")
    with pytest.raises(ValueError, match="at least one sentence"):
        ffn_activation_importance(tiny_model_dir, [])
    with pytest.raises(ValueError, match="not a tfkosent model directory"):
        ffn_activation_importance(str(tmp_path), ["문장"])


def test_importance_sentences_refuse_evaluation_sets(shared_data_dir):
    from tfkosent.training.prune import importance_sentences
    from tfkosent.training.silver import SilverError
    got = importance_sentences(["korsts-train"], limit=50, data_dir=shared_data_dir)
    assert len(got) == 50 == len(set(got))
    assert got == importance_sentences(["korsts-train"], limit=50, data_dir=shared_data_dir)
    with pytest.raises(SilverError, match="evaluation set"):
        importance_sentences(["korsts-dev"], data_dir=shared_data_dir)


def test_cli_prune_ffn(tiny_model_dir, shared_data_dir, tmp_path, capsys):
    from tfkosent.cli import main
    out = tmp_path / "pruned"
    assert main(["prune-ffn", tiny_model_dir, str(out), "--intermediate-size", "8", "--limit", "30",
                 "--sources", "korsts-train", "--data-dir", shared_data_dir]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    meta = load_model_dir(str(out)).config.metadata
    assert meta["ffn_pruning"] == {"by": "activations", "sentences": 30, "sources": ["korsts-train"]}
    assert SentenceEncoder.load(str(out)).encode(SENTENCES[:2]).shape[0] == 2
    assert main(["prune-ffn", tiny_model_dir, str(tmp_path / "x"), "--intermediate-size", "8",
                 "--sources", "korsts-test", "--data-dir", shared_data_dir]) == 2
    assert "'korsts-test' is an evaluation set" in capsys.readouterr().err


def test_cli_prune_ffn_reads_the_model_once(tiny_model_dir, tmp_path, monkeypatch):
    """The model directory loaded for the --intermediate-size check is the one measured and
    pruned: load_model_dir runs once, wherever a module imported it from."""
    import sys

    import tfkosent.model_dir
    from tfkosent.cli import main
    from tfkosent.training import synthetic

    data_dir = synthetic.write_data_dir(str(tmp_path / "data"), datasets=["korsts-train"])

    original, calls = tfkosent.model_dir.load_model_dir, []

    def counting(path):
        calls.append(path)
        return original(path)

    for module in [m for name, m in sys.modules.items() if name.startswith("tfkosent")]:
        if getattr(module, "load_model_dir", None) is original:
            monkeypatch.setattr(module, "load_model_dir", counting)
    out = tmp_path / "pruned"
    assert main(["prune-ffn", tiny_model_dir, str(out), "--intermediate-size", "8", "--limit", "10",
                 "--sources", "korsts-train", "--data-dir", data_dir]) == 0
    assert calls == [tiny_model_dir]
    assert original(str(out)).config.metadata["ffn_pruning"]["sentences"] == 10


def test_prune_ffn_of_default_is_the_default_model(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from tfkosent.cli import main
    monkeypatch.setenv("TFKOSENT_DEFAULT_MODEL", tiny_model_dir)
    out = tmp_path / "pruned"
    assert main(["prune-ffn", "default", str(out), "--intermediate-size", "8", "--by", "weights"]) == 0
    assert load_model_dir(str(out)).config.metadata["pruned_model"] == tiny_model_dir


# --------------------------------------------------------------------------- vocabulary


def test_reprune_removes_the_pieces_only_other_text_needed(tmp_path):
    """A model pruned on texts A + B, re-pruned on A alone (as the shipped model was, without
    the evaluation sets): the pieces only B used go, A tokenizes and embeds exactly as before."""
    from tfkosent import testing
    from tfkosent.convert import sentencepiece_proto as spp
    from tfkosent.convert.prune import prune_vocabulary, reprune_model_dir, select_korean_pieces

    a = korean_sentences(300, seed=5)
    b = ["바이올린 연주회가 열렸다", "오케스트라 지휘자가 인사했다", "피아니스트가 협주곡을 연습한다"] * 20
    full = testing.write_tiny_model(str(tmp_path / "full"), sentences=a + b)
    files = load_model_dir(full)
    keep, _ = select_korean_pieces(files.sentencepiece_proto, a + b)
    config, weights, proto = prune_vocabulary(files.config.encoder, files.weights, files.sentencepiece_proto, keep)
    import dataclasses
    pruned = save_model_dir(str(tmp_path / "pruned"), dataclasses.replace(files.config, encoder=config),
                            weights, sentencepiece_proto=proto)
    out = reprune_model_dir(pruned, str(tmp_path / "repruned"), files.sentencepiece_proto, a)
    assert out["removed"] and out["kept"] + len(out["removed"]) == config.vocab_size
    a_pieces = {p for t in a for p in SentenceEncoder.load(pruned).tokenize([t])[0]}
    assert not set(out["removed_ids"]) & a_pieces                       # A never used them
    again = load_model_dir(str(tmp_path / "repruned"))
    assert again.config.encoder.vocab_size == out["kept"]
    assert len(spp.proto_vocab(again.sentencepiece_proto)[0]) == out["kept"]
    np.testing.assert_allclose(SentenceEncoder.load(str(tmp_path / "repruned")).encode(a[:50]),
                               SentenceEncoder.load(pruned).encode(a[:50]), atol=1e-6)
    b_tokens = lambda d: [SentenceEncoder.load(d).tokenize([t])[0] for t in b[:3]]  # noqa: E731
    assert b_tokens(pruned) != b_tokens(str(tmp_path / "repruned"))     # B now segments otherwise
    with pytest.raises(ValueError, match="does not have"):              # not pruned from that model
        reprune_model_dir(str(tmp_path / "repruned"), str(tmp_path / "x"), files.sentencepiece_proto, a + b)


def test_the_pruning_corpus_refuses_evaluation_sets(tmp_path):
    from tfkosent.convert.prune import EVALUATION_FILES, KOREAN_CORPUS_FILES, prune_korean

    assert not set(EVALUATION_FILES) & set(KOREAN_CORPUS_FILES)
    with pytest.raises(ValueError, match="are evaluation sets: a vocabulary chosen on their text"):
        prune_korean(None, {}, b"", ["korsts/sts-train.tsv", "korsts/sts-test.tsv"], data_dir=str(tmp_path))


@pytest.mark.parametrize("size", ["0", "64", "5000"])
def test_cli_prune_ffn_checks_the_intermediate_size_before_loading_data(tiny_model_dir, tmp_path, capsys,
                                                                        size):
    from tfkosent.cli import main
    width = load_model_dir(tiny_model_dir).config.encoder.intermediate_size
    assert width == 64
    # no data: a late check would first fail to find (or try to download) the sentences
    assert main(["prune-ffn", tiny_model_dir, str(tmp_path / "x"), "--intermediate-size", size,
                 "--data-dir", str(tmp_path / "no-data")]) == 2
    assert f"error: --intermediate-size must be in 1..{width - 1}" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
