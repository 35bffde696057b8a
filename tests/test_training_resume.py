"""Interrupted runs lose nothing: SIGKILL after a checkpoint, then SIGTERM mid-run, then finish.

`tfkosent train` runs in subprocesses.  The chain

    run 1   killed with SIGKILL once a checkpoint exists   (steps after it are lost)
    run 2   --resume; stopped with SIGTERM                  (saves a checkpoint, exit 143)
    run 3   --resume; finishes

must consume exactly the batches of an uninterrupted run with the same seed, in
the same order, and end with bit-identical weights.  Bit-exactness holds on
CPU because everything a step depends on is restored: weights, AdamW moments
and iteration count (the learning-rate schedule), the data position (the data
order is a pure function of seed and epoch) and the dropout RNG states (Keras
SeedGenerator variables); CPU kernels are deterministic for equal inputs and
thread counts, and `deterministic: true` enables TF's op determinism on top.
(On GPUs, non-deterministic kernels can make resumed runs drift slightly.)
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tfkosent import testing
from tfkosent.training import synthetic
from tfkosent.training.reporting import read_batch_log, read_metrics

EVERY = 10
RECIPE = """\
model: {model}
output_dir: {out}
seed: 7
deterministic: true
epochs: 2
tasks:
  - loss: cosent
    data: [korsts-train]
    batch_size: 8
optimizer: {{learning_rate: 1.0e-3}}
eval: {{every_steps: 25}}
checkpoint: {{every_steps: {every}}}
log_every: 1
log_batches: true
progress_bar: false
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    data = synthetic.write_data_dir(str(root / "data"), datasets=["korsts-train", "korsts-dev"])
    model = testing.write_tiny_model(str(root / "model"), sentences=synthetic.vocabulary_sentences())
    return root, data, model


def write_recipe(root, name, model):
    path = root / f"{name}.yaml"
    path.write_text(RECIPE.format(model=model, out=root / name, every=EVERY), encoding="utf-8")
    return str(path), root / name


def start(recipe, data_dir, log_path, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "tfkosent.cli", "train", recipe, "--data-dir", data_dir,
                             *extra], stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env)


def wait_for(condition, process, timeout=180.0, what=""):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (rc {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def latest_step(out):
    path = out / "checkpoints" / "checkpoint"
    if not path.exists():
        return -1
    first = path.read_text().splitlines()[0]          # model_checkpoint_path: "ckpt-N"
    return int(first.split("ckpt-")[1].rstrip('"'))


def raw_batch_log(out):
    path = out / "batches.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def steps_after_last_resume(out):
    records = raw_batch_log(out)
    resumes = [i for i, r in enumerate(records) if r.get("event", "").startswith("resume")]
    return [r for r in records[resumes[-1] + 1:] if "step" in r and "event" not in r] if resumes else []


def test_killed_and_terminated_runs_resume_exactly(setup):
    root, data, model = setup
    ref_recipe, ref_out = write_recipe(root, "reference", model)
    recipe, out = write_recipe(root, "interrupted", model)
    reference = start(ref_recipe, data, root / "reference.log")  # runs alongside the chain

    # run 1: SIGKILL once the second checkpoint exists
    run = start(recipe, data, root / "run1.log")
    wait_for(lambda: latest_step(out) >= 2 * EVERY, run, what="checkpoint 20")
    run.send_signal(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    killed_at = latest_step(out)
    logged = [r["step"] for r in raw_batch_log(out) if "event" not in r]
    assert logged == list(range(1, len(logged) + 1)) and logged[-1] >= killed_at

    # run 2: resume, then SIGTERM: a checkpoint at the interrupted step, exit 128 + 15
    run = start(recipe, data, root / "run2.log", "--resume")
    wait_for(lambda: len(steps_after_last_resume(out)) >= 3, run, what="steps after resuming")
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=120) == 128 + signal.SIGTERM
    err = (root / "run2.log").read_text()
    assert "stopped by SIGTERM at step" in err and "continue with --resume" in err
    resumed = steps_after_last_resume(out)
    assert resumed[0]["step"] == killed_at + 1          # continues right after the checkpoint
    terminated_at = latest_step(out)
    assert terminated_at == resumed[-1]["step"]        # the running step finished, then saved
    assert f"resumed from {out / 'checkpoints' / f'ckpt-{killed_at}'}" in err

    # run 3: resume to the end
    run = start(recipe, data, root / "run3.log", "--resume")
    assert run.wait(timeout=300) == 0, (root / "run3.log").read_text()[-2000:]
    assert steps_after_last_resume(out)[0]["step"] == terminated_at + 1
    assert reference.wait(timeout=300) == 0, (root / "reference.log").read_text()[-2000:]

    # no batch repeated or skipped: the effective order is the reference's
    effective, expected = read_batch_log(out / "batches.jsonl"), read_batch_log(ref_out / "batches.jsonl")
    assert [r["step"] for r in effective] == list(range(1, 101))
    assert [(r["epoch"], r["position"], r["examples"]) for r in effective] == \
        [(r["epoch"], r["position"], r["examples"]) for r in expected]
    # same losses step by step, same dev scores, bit-identical final weights
    losses = lambda d: [(r["step"], r["loss"]) for r in read_metrics(str(d / "metrics.jsonl"), "train")]
    assert losses(out) == losses(ref_out)
    spearman = lambda d: [(r["step"], r["cosine_spearman"]) for r in read_metrics(str(d / "metrics.jsonl"), "eval")]
    assert spearman(out) == spearman(ref_out)
    with np.load(out / "model" / "weights.npz") as a, np.load(ref_out / "model" / "weights.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            assert np.array_equal(a[name], b[name]), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 100 and summary["resumed_from"] == terminated_at


def test_resume_after_the_last_step_repairs_what_a_kill_left(setup, tmp_path):
    """A run killed after its last checkpoint (while writing model/, the export or summary.json)
    resumes to the summary an uninterrupted run writes, final loss included; the leftovers of
    killed atomic writes are removed, and a torn last line of metrics.jsonl (power loss, full
    disk) is cut instead of breaking every later report."""
    from tfkosent.training import parse_config, train

    root, data, model = setup
    values = {"model": model, "output_dir": str(tmp_path / "run"), "seed": 3, "max_steps": 6,
              "tasks": [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 8}],
              "optimizer": {"learning_rate": 1e-3}, "eval": None, "checkpoint": {"every_steps": 3},
              "log_every": 1, "progress_bar": False}
    finished = train(parse_config(values), data_dir=data)
    assert finished.final_loss is not None
    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())

    # what a SIGKILL during the final writes leaves
    import shutil
    shutil.rmtree(out / "model")
    (out / "summary.json").unlink()
    leftovers = [out / ".model.tmp-k1ll3d", out / "checkpoints" / "ckpt-6_temp"]
    for path in leftovers:
        path.mkdir()
        (path / "part").write_bytes(b"x" * 100)
    leftovers.append(out / ".summary.json.123.0123abcd.tmp")
    leftovers[-1].write_text("{")
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"kind": "train", "step": 4')                     # no newline: torn

    resumed = train(parse_config(values), data_dir=data, resume=True)
    assert resumed.final_loss == finished.final_loss
    again = json.loads((out / "summary.json").read_text())
    assert {k: v for k, v in again.items() if k != "resumed_from"} == \
        {k: v for k, v in summary.items() if k != "resumed_from"}
    assert not [p for p in leftovers if p.exists()]
    lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert all(json.loads(line) for line in lines)                  # every line decodes
    assert (out / "model" / "weights.npz").exists()


def test_a_stop_outside_the_training_loop_prints_the_resume_hint(monkeypatch, capsys):
    """SIGTERM while a run loads data, builds its teacher cache or writes its outputs (outside
    the loop's own handler) ends with the resume hint and 128 + 15, not an instant death;
    Ctrl-C likewise, with 130 and no traceback."""
    import argparse

    from tfkosent.training import config as training_config
    from tfkosent.training import trainer
    from tfkosent.training.cli import train_cli

    monkeypatch.setattr(training_config, "load_config", lambda path, overrides=None: None)

    def not_handled(signum, frame):    # what SIGTERM reaches if train_cli installs no handler
        raise AssertionError("train_cli let SIGTERM through (it would kill the process)")

    before = signal.signal(signal.SIGTERM, not_handled)

    def terminated_while_writing(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)                      # the handler raises in the main thread first
        raise AssertionError("SIGTERM did not stop the run")

    args = argparse.Namespace(config="recipe.yaml", resume=False, data_dir=None, set=[], overwrite=False)
    monkeypatch.setattr(trainer, "train", terminated_while_writing)
    assert train_cli(args) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip() == ("tfkosent train: stopped by SIGTERM; run the same "
                                               "command with --resume to continue from what was saved")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer, "train", interrupted)
    assert train_cli(args) == 128 + signal.SIGINT
    assert "stopped by SIGINT" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is not_handled          # the handler is put back
    signal.signal(signal.SIGTERM, before)


# --------------------------------------------------------------------------- steps_per_loop

# Two tasks interleaved (round robin: long, short, long, short, ... then long alone) for 2 epochs
# of 15 steps; log lines every 4, checkpoints every 6, evaluations every 7 steps: none a
# multiple of 3, and an epoch ends at step 15, between them.
LOOP_TASKS = [{"name": "long", "loss": "cosent", "data": [{"name": "korsts-train", "limit": 96}],
               "batch_size": 8},
              {"name": "short", "loss": "cosine_mse", "data": [{"name": "korsts-train", "limit": 24}],
               "batch_size": 8}]


def loop_run(root, data, model, name, steps_per_loop, monkeypatch, resume=False):
    """Trains the recipe above in process; returns (trainer, output dir, steps checkpointed)."""
    from tfkosent.training import parse_config
    from tfkosent.training.trainer import Trainer

    values = {"model": model, "output_dir": str(root / name), "seed": 5, "epochs": 2,
              "schedule": "round_robin", "tasks": LOOP_TASKS, "optimizer": {"learning_rate": 1e-3},
              "eval": {"every_steps": 7, "at_start": False, "limit": 16},
              "checkpoint": {"every_steps": 6, "keep": 1}, "log_every": 4, "log_batches": True,
              "progress_bar": False, "steps_per_loop": steps_per_loop}
    saves = []
    original = Trainer._save_checkpoint

    def recording(self):
        path = original(self)
        saves.append(self.state.position[0])
        return path

    monkeypatch.setattr(Trainer, "_save_checkpoint", recording)
    trainer = Trainer(parse_config(values), data_dir=data, resume=resume)
    try:
        trainer.fit()
    finally:
        monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    return trainer, root / name, saves


def test_steps_per_loop_runs_the_same_steps_and_resumes_exactly(setup, monkeypatch):
    """steps_per_loop 3 runs several steps of one task a call, cut at every log line,
    evaluation, checkpoint and epoch end, each task's loop traced once for chunks of 1 to 3.
    Stopped by a signal (seen at the end of a chunk) and resumed, it is the one-step-a-call
    run: the same batches at the same steps, logged losses, dev scores, checkpoint steps (and
    the stop's) and final weights."""
    import signal as signals

    from tfkosent.training import checkpointing, trainer as trainer_module
    from tfkosent.training.trainer import Trainer, TrainingInterrupted

    root, data, model = setup
    chunks, taken = [], []       # (first step, steps) of each loop; (step, epoch, batch) positions
    chunk_length, set_position = Trainer._chunk_length, checkpointing.TrainState.set_position

    def recording_chunks(self, order, pos, step):
        chunks.append((step + 1, chunk_length(self, order, pos, step)))
        return chunks[-1][1]

    def recording_positions(self, step, epoch, batch):
        taken.append((step, epoch, batch))
        return set_position(self, step, epoch, batch)

    monkeypatch.setattr(checkpointing.TrainState, "set_position", recording_positions)
    ref_trainer, ref_out, ref_saves = loop_run(root, data, model, "loop1", 1, monkeypatch)
    assert all(t.loop_fn is None for t in ref_trainer.tasks)
    ref_positions = taken[:]
    taken.clear()

    class StopAfterStep16(checkpointing.StopSignals):   # a log line's step, not a checkpoint's
        @property
        def received(self):
            return signals.SIGTERM if taken and taken[-1][0] >= 16 else None

        @received.setter
        def received(self, value):
            pass

    monkeypatch.setattr(Trainer, "_chunk_length", recording_chunks)
    monkeypatch.setattr(trainer_module, "StopSignals", StopAfterStep16)
    with pytest.raises(TrainingInterrupted) as info:
        loop_run(root, data, model, "loop3", 3, monkeypatch)
    assert info.value.step == 16
    stop_saves = [16]
    monkeypatch.setattr(trainer_module, "StopSignals", checkpointing.StopSignals)
    trainer, out, saves = loop_run(root, data, model, "loop3", 3, monkeypatch, resume=True)
    assert trainer.resumed_from == 16
    # chunks: steps 1-6 and 16-21 alternate between the tasks; "long" alone runs 3 steps a call
    # where no log line (every 4), checkpoint (6), evaluation (7), epoch end (15) or the end
    # (30) comes first
    assert sum(n for _, n in chunks) == 30
    assert [(s, n) for s, n in chunks if n > 1] == [(9, 3), (13, 2), (22, 3), (25, 3), (29, 2)]
    assert [t.loop_fn.experimental_get_tracing_count() for t in trainer.tasks] == [1, 1]
    assert all(t.step_fn is None for t in trainer.tasks)
    assert set(taken) <= set(ref_positions)            # each loop's end: where one step a call was
    assert trainer.state.position == ref_trainer.state.position
    assert sorted(ref_saves + stop_saves) == [s for s in ref_saves if s <= 16] + stop_saves + saves
    assert 6 in saves + ref_saves and saves[-1] == 30
    logged = [r["step"] for r in raw_batch_log(out) if "event" not in r]
    assert logged == list(range(1, 31))                  # every step logged once, none lost
    assert_same_run(out, ref_out)


def assert_same_run(out, ref_out):
    """Same batches at the same steps, same logged losses and dev scores, same final weights."""
    batches = lambda d: [(r["step"], r["epoch"], r["position"], r["task"], r["batch"], r["examples"])
                         for r in read_batch_log(d / "batches.jsonl")]
    assert batches(out) == batches(ref_out)
    assert [b[0] for b in batches(out)] == list(range(1, 31))
    train = lambda d: [(r["step"], r["task"], r["loss"], r["learning_rate"])
                       for r in read_metrics(str(d / "metrics.jsonl"), "train")]
    assert train(out) == train(ref_out)
    evals = lambda d: [(r["step"], r["cosine_spearman"])
                       for r in read_metrics(str(d / "metrics.jsonl"), "eval")]
    assert evals(out) == evals(ref_out) and [e[0] for e in evals(out)] == [7, 14, 21, 28, 30]
    with np.load(out / "model" / "weights.npz") as a, np.load(ref_out / "model" / "weights.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6, err_msg=name)


def test_resuming_a_run_written_before_steps_per_loop_existed_changes_nothing(tmp_path, caplog):
    """A recipe.json saved without `steps_per_loop` had the default (1): resuming it under a
    recipe that says 1 is no change (no warning, no recipe.until-step-N.json); 4 is one."""
    from tfkosent.training import parse_config
    from tfkosent.training.trainer import Trainer

    values = {"model": str(tmp_path / "m"), "output_dir": str(tmp_path / "run"),
              "tasks": [{"loss": "cosent", "data": ["korsts-train"]}]}
    for steps_per_loop, kept in ((1, False), (4, True)):
        trainer = Trainer(parse_config(dict(values, steps_per_loop=steps_per_loop)), resume=True)
        os.makedirs(trainer.output_dir, exist_ok=True)
        old = parse_config(values).to_dict()
        del old["steps_per_loop"]
        trainer._previous_recipe, trainer.resumed_from = old, 10
        with caplog.at_level("WARNING", logger="tfkosent.training"):
            trainer._write_recipe()
        assert (tmp_path / "run" / "recipe.until-step-10.json").exists() == kept
        assert ("steps_per_loop (1 -> 4)" in caplog.text) == kept
