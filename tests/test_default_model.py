"""The shipped default model (tfkosent/assets/default_model): what `SentenceEncoder.load()`,
`tfkosent export --model default` and `make demo` use.

These are integration checks of the real model, not of a tiny one: it loads with no
argument, its TF Hub-style export gives the same embeddings, and its KorSTS dev score over
the first 200 pairs stays above a floor set 2 points under the value measured when it was
packaged (MODEL_CARD.md; `tfkosent evaluate default --tasks korsts-dev --limit 200`).
"""

import json
import os

import numpy as np
import pytest

from tfkosent.sentence_encoder import DEFAULT_MODEL_DIR, SentenceEncoder

# Measured on the packaged model: KorSTS dev cosine Spearman x 100 over the first 200 pairs.
# Re-measure and update it (and MODEL_CARD.md) whenever the shipped model changes.
KORSTS_DEV_200_MEASURED = 92.61  # tfkosent-default-ko-3l (student_sts2, session 22), vocabulary re-pruned without the evaluation sets (session 27: unchanged on these 200 pairs), 2026-12-07
FLOOR_MARGIN = 2.0

SENTENCES = ["한 남자가 음식을 먹는다.", "한 남자가 파스타를 먹는다.", "치타가 들판을 가로 질러 먹이를 쫓는다.",
             "", "😀 emoji와 English가 섞인 문장", "가나다 " * 300]


@pytest.fixture(scope="module")
def default_model():
    from tfkosent.sentence_encoder import default_model_path

    assert os.path.isfile(os.path.join(DEFAULT_MODEL_DIR, "config.json")), \
        f"no shipped default model at {DEFAULT_MODEL_DIR}"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TFKOSENT_DEFAULT_MODEL", raising=False)
        assert default_model_path() == DEFAULT_MODEL_DIR      # the shipped model wins over any cache
        return SentenceEncoder.load()                         # no argument


def test_load_without_argument_is_the_shipped_3_layer_model(default_model, monkeypatch):
    from tfkosent.model_dir import load_model_dir

    monkeypatch.delenv("TFKOSENT_DEFAULT_MODEL", raising=False)
    assert load_model_dir("default").path == DEFAULT_MODEL_DIR   # export_model("default", ...) too
    config = json.load(open(os.path.join(DEFAULT_MODEL_DIR, "config.json"), encoding="utf-8"))
    assert config["encoder"]["num_layers"] == 3
    assert config["metadata"]["trained"] is True
    assert config["metadata"]["default_model"]["dtype"] == "float16"
    # the recorded count (copied into every export's tfkosent_export.json) is the weights' own
    with np.load(os.path.join(DEFAULT_MODEL_DIR, "weights.npz")) as weights:
        parameters = sum(int(np.prod(weights[k].shape)) for k in weights.files)
    assert config["metadata"]["default_model"]["parameters"] == parameters <= 20_000_000
    size = sum(os.path.getsize(os.path.join(DEFAULT_MODEL_DIR, f)) for f in os.listdir(DEFAULT_MODEL_DIR))
    assert size < 50 * 2**20
    emb = default_model.encode(SENTENCES)
    assert emb.shape == (len(SENTENCES), config["encoder"]["hidden_size"]) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = default_model.similarity(SENTENCES[:3])
    assert sim[0, 1] > sim[0, 2]      # eating pasta is closer to eating food than a cheetah chase


def test_decomposed_hangul_embeds_as_composed(default_model):
    """NFD text (conjoining jamo, e.g. copied on macOS) is the same sentence: without NFC the
    shipped vocabulary saw single jamo and unknown pieces (cosine 0.48 to the NFC form)."""
    import unicodedata
    composed = SENTENCES[:3]
    decomposed = [unicodedata.normalize("NFD", s) for s in composed]
    assert decomposed != composed
    np.testing.assert_allclose(default_model.encode(decomposed), default_model.encode(composed), atol=1e-6)


def test_export_matches_load(default_model, tmp_path):
    import tensorflow as tf
    from tfkosent.cli import main
    from tfkosent.export import SERVING_INPUT, SERVING_OUTPUT

    out = tmp_path / "export"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TFKOSENT_DEFAULT_MODEL", raising=False)
        assert main(["export", "--model", "default", "--out", str(out)]) == 0
    served = tf.saved_model.load(str(out / "sentence_encoder" / "1")).signatures["serving_default"](
        **{SERVING_INPUT: tf.constant(SENTENCES)})[SERVING_OUTPUT].numpy()
    np.testing.assert_allclose(served, default_model.encode(SENTENCES), atol=1e-5)
    # the licence text travels with the weights (their licence_notes point to it)
    from tfkosent.export import default_model_licence
    shipped = default_model_licence(json.loads((out / "tfkosent_export.json").read_text("utf-8"))["metadata"])
    assert (out / "DEFAULT_MODEL_LICENSE.md").read_bytes() == open(shipped, "rb").read()
    assert "- Licence text: `DEFAULT_MODEL_LICENSE.md`, in this directory" in (out / "README.md").read_text("utf-8")


def test_tflite_matches_load(default_model, tmp_path):
    """sentence_encoder.tflite of the shipped model gives encode()'s embeddings, decomposed
    Hangul included: the shipped SentencePiece model does not compose jamo itself (the raw
    flat buffer embeds NFD text apart), so TFLiteSentenceEncoder composes it first."""
    import unicodedata

    from tfkosent.tflite import SENTENCE_MODEL_FILE, TFLiteSentenceEncoder, export_tflite, make_interpreter

    out = str(tmp_path / "tflite")
    export_tflite(DEFAULT_MODEL_DIR, out, variants=["sentence_encoder"])
    model = TFLiteSentenceEncoder.load(out, num_threads=1)
    with pytest.warns(UserWarning, match="truncat"):
        expected = default_model.encode(SENTENCES)
    with pytest.warns(UserWarning, match="truncat"):
        np.testing.assert_allclose(model.encode(SENTENCES), expected, atol=1e-5)
    composed = SENTENCES[0]
    decomposed = unicodedata.normalize("NFD", composed)
    np.testing.assert_allclose(model.encode(decomposed), expected[0], atol=1e-5)
    raw = make_interpreter(os.path.join(out, SENTENCE_MODEL_FILE)).get_signature_runner()(
        sentences=np.array([decomposed], dtype=object))["embeddings"][0]
    assert float(raw @ expected[0]) < 0.9


def test_korsts_dev_first_200_pairs_above_floor(default_model, shared_data_dir):
    from tfkosent.evaluation.sts import run_tasks

    assert KORSTS_DEV_200_MEASURED is not None, "set KORSTS_DEV_200_MEASURED when packaging"
    results = run_tasks(lambda s: default_model.encode(s), ["korsts-dev"], data_dir=shared_data_dir,
                        limit=200)
    score = results["korsts-dev"]["cosine_spearman"]
    assert score >= KORSTS_DEV_200_MEASURED - FLOOR_MARGIN, \
        f"KorSTS dev (first 200 pairs) Spearman {score:.2f} < floor {KORSTS_DEV_200_MEASURED - FLOOR_MARGIN:.2f}"
