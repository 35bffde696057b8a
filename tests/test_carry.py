"""A run carried to another directory (`tfkosent carry pack` / `unpack`) resumes where it stopped.

The chain: a run stopped at step 20 of 50 (`stop_at_step`), packed, unpacked into a
new output directory and resumed with the full schedule must end where an
uninterrupted run ends: bit-identical weights from an exact carry, float16
rounding away from them from a compact one.
"""

import json
import os

import numpy as np
import pytest

from tfkosent import testing
from tfkosent.cli import main as cli_main
from tfkosent.model_dir import load_model_dir
from tfkosent.training import carry, synthetic
from tfkosent.training.config import parse_config
from tfkosent.training.trainer import train


def recipe(model, out, stop_at_step=None):
    values = {"model": model, "output_dir": str(out), "seed": 7, "deterministic": True,
              "epochs": 1, "tasks": [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 8}],
              "optimizer": {"learning_rate": 1e-3}, "eval": {"every_steps": 20},
              "checkpoint": {"every_steps": 10}, "progress_bar": False}
    if stop_at_step:
        values["stop_at_step"] = stop_at_step
    return parse_config(values)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("carry")
    data = synthetic.write_data_dir(str(root / "data"), datasets=["korsts-train", "korsts-dev"])
    model = testing.write_tiny_model(str(root / "model"), sentences=synthetic.vocabulary_sentences())
    full = train(recipe(model, root / "full"), data_dir=data)
    stopped = train(recipe(model, root / "stopped", stop_at_step=20), data_dir=data)
    assert (full.steps, stopped.steps) == (50, 20)
    return root, data, model, load_model_dir(full.model_dir).weights


def resume_from_carry(root, data, model, name, exact):
    path = str(root / f"{name}.carry.npz")
    info = carry.pack(str(root / "stopped"), path, exact=exact)
    assert (info["step"], info["exact"]) == (20, exact)
    assert {"recipe.json", "metrics.jsonl"} <= set(info["files"])
    carry.unpack(path, str(root / name))
    result = train(recipe(model, root / name), data_dir=data, resume=True)
    assert (result.resumed_from, result.steps) == (20, 50)
    return path, load_model_dir(result.model_dir).weights


def test_exact_carry_resumes_bit_identically(setup):
    root, data, model, reference = setup
    _, weights = resume_from_carry(root, data, model, "exact", exact=True)
    assert sorted(weights) == sorted(reference)
    for name in reference:
        np.testing.assert_array_equal(weights[name], reference[name], err_msg=name)


def test_compact_carry_is_smaller_and_resumes_close(setup):
    root, data, model, reference = setup
    path, weights = resume_from_carry(root, data, model, "compact", exact=False)
    meta = carry.read_meta(path)
    encodings = {t["encoding"] for t in meta["tensors"]}
    assert {"float16", "bfloat16", "raw"} <= encodings
    # weights float16, the optimizer's moments bfloat16: never a model tensor as bfloat16
    assert not any(t["key"].startswith("model/") and t["encoding"] == "bfloat16"
                   for t in meta["tensors"])
    with np.load(path) as stored:
        for t in meta["tensors"]:
            if t["encoding"] != "raw":
                assert stored[t["array"]].dtype.itemsize == 2, t
    assert os.path.getsize(path) < os.path.getsize(root / "exact.carry.npz")
    diffs = [float(np.max(np.abs(weights[k] - reference[k]))) for k in reference]
    assert max(diffs) < 5e-3
    assert max(diffs) > 0  # it did travel through float16


def test_bfloat16_round_trip_keeps_tiny_values():
    x = np.array([1e-12, 3.0e-9, -2.5e-7, 1.0, 65504.0 * 4], np.float32)
    back = carry._from_bfloat16(carry._to_bfloat16(x))
    np.testing.assert_allclose(back, x, rtol=2 ** -8)
    assert np.all(back[:3] != 0)   # float16 would flush these to zero


def test_unpack_refuses_a_run_with_a_checkpoint_and_bad_files(setup, tmp_path):
    root = setup[0]
    path = str(root / "exact.carry.npz")
    if not os.path.exists(path):
        carry.pack(str(root / "stopped"), path, exact=True)
    with pytest.raises(FileExistsError, match="already holds a checkpoint"):
        carry.unpack(path, str(root / "stopped"))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        carry.pack(str(tmp_path), str(tmp_path / "x.npz"))
    bogus = tmp_path / "bogus.npz"
    np.savez(bogus, meta=np.frombuffer(json.dumps({"format": "other"}).encode(), np.uint8))
    with pytest.raises(carry.CarryError, match="not a tfkosent carry file"):
        carry.unpack(str(bogus), str(tmp_path / "run"))
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(carry.CarryError, match="text.npz: not a tfkosent carry file"):
        carry.read_meta(str(tmp_path / "text.npz"))


def test_cli_pack_and_unpack(setup, tmp_path, capsys):
    root = setup[0]
    out = tmp_path / "run.carry.npz"
    assert cli_main(["carry", "pack", str(root / "stopped"), str(out)]) == 0
    assert "step 20" in capsys.readouterr().out
    assert cli_main(["carry", "unpack", str(out), str(tmp_path / "run")]) == 0
    assert "continue" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "run" / "checkpoints" / "checkpoint")
    assert cli_main(["carry", "unpack", str(out), str(tmp_path / "run")]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["pack", "unpack"])
def test_cli_checks_the_output_path_before_reading_anything(action, tmp_path, capsys):
    """FILE (pack) and RUN_DIR (unpack) are refused before the checkpoint or the carry file is
    read: the inputs here do not exist, so a late check would fail on them first."""
    afile = tmp_path / "a_file"
    afile.write_text("x")
    (tmp_path / "adir").mkdir()
    missing = str(tmp_path / "missing")
    cases = {"pack": [([missing, str(afile / "x.npz")], f"FILE {afile}/x.npz: its parent {afile} is a file"),
                      ([missing, str(tmp_path / "adir")], f"FILE {tmp_path / 'adir'} is a directory")],
             "unpack": [([missing + ".npz", str(afile)], f"RUN_DIR {afile} is a file, not a directory"),
                        ([missing + ".npz", str(afile / "run")], f"RUN_DIR {afile}/run: its parent {afile}")]}
    for paths, message in cases[action]:
        assert cli_main(["carry", action, *paths]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"tfkosent carry: error: {message}"), err
        assert "Traceback" not in err
