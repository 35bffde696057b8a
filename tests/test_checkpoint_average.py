"""benchmarks/checkpoint_average.py: a run's checkpoints averaged into a model directory."""

import importlib.util
import os

import numpy as np
import pytest

from tfkosent import testing
from tfkosent.model_dir import load_model_dir
from tfkosent.training import synthetic
from tfkosent.training.config import parse_config
from tfkosent.training.trainer import train

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                     "checkpoint_average.py")
_spec = importlib.util.spec_from_file_location("checkpoint_average", _PATH)
checkpoint_average = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checkpoint_average)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("average")
    data = synthetic.write_data_dir(str(root / "data"), datasets=["korsts-train"])
    model = testing.write_tiny_model(str(root / "model"), sentences=synthetic.vocabulary_sentences())
    # No eval: the run's model/ is its last step, which is also its last checkpoint.
    config = parse_config({"model": model, "output_dir": str(root / "run"), "seed": 7, "epochs": 1,
                           "tasks": [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 8}],
                           "optimizer": {"learning_rate": 1e-3}, "eval": None,
                           "checkpoint": {"every_steps": 10, "keep": 10},
                           "progress_bar": False})
    result = train(config, data_dir=data)
    return root, result


def weights(path):
    return load_model_dir(str(path)).weights


def test_average_of_checkpoints(run):
    root, result = run
    run_dir = root / "run"
    steps = checkpoint_average.checkpoint_steps(str(run_dir))
    assert steps[-1] == result.steps and len(steps) >= 4
    # one checkpoint, the last: the run's final model
    assert checkpoint_average.average_checkpoints(str(run_dir), str(root / "last"), steps[-1]) == [steps[-1]]
    final, last = weights(run_dir / "model"), weights(root / "last")
    for name in final:
        np.testing.assert_allclose(last[name], final[name], atol=1e-6, err_msg=name)
    # two checkpoints: the mean of each alone
    a, b = steps[-3], steps[-2]
    checkpoint_average.average_checkpoints(str(run_dir), str(root / "a"), a, a)
    checkpoint_average.average_checkpoints(str(run_dir), str(root / "b"), b, b)
    assert checkpoint_average.average_checkpoints(str(run_dir), str(root / "ab"), a, b) == [a, b]
    wa, wb, wab = weights(root / "a"), weights(root / "b"), weights(root / "ab")
    assert any(not np.allclose(wa[n], wb[n]) for n in wa)          # training moved the weights
    for name in wab:
        np.testing.assert_allclose(wab[name], (wa[name] + wb[name]) / 2, atol=1e-6, err_msg=name)
    assert load_model_dir(str(root / "ab")).config.encoder == load_model_dir(str(run_dir / "model")).config.encoder


def test_no_checkpoint_in_the_window_is_an_error(run, capsys):
    root, result = run
    rc = checkpoint_average.main([str(root / "run"), str(root / "none"), "--from-step", str(result.steps + 1)])
    assert rc == 2
    assert f"has no checkpoint in steps [{result.steps + 1}, end]" in capsys.readouterr().err
    assert not os.path.exists(root / "none")
