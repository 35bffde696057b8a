"""Training runs on tiny models (hidden 32, 2 layers) and synthetic data, in process.

Every objective must lower its loss over a few dozen steps and raise the cosine
Spearman of a synthetic STS dev set (word-overlap similarity written with
synonyms, `tfkosent.training.synthetic`) above the untrained model's (the
step-0 evaluation).  Also: outputs, multitask schedules, the NaN guard, and the
CLI's error paths.
"""

import argparse
import json
import logging
import os

import numpy as np
import pytest

from tfkosent import testing
from tfkosent.training import parse_config, synthetic, train
from tfkosent.training.cli import EXIT_ERROR, EXIT_NON_FINITE, train_cli
from tfkosent.training.reporting import read_batch_log, read_metrics

RNG_NOISE = np.random.default_rng(7)

pytestmark = pytest.mark.filterwarnings("ignore::tfkosent.data.datasets.DatasetCountWarning")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return synthetic.write_data_dir(str(tmp_path_factory.mktemp("synthetic_data")))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random tiny model whose vocabulary knows both forms of every synthetic word."""
    return testing.write_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny"),
                                    sentences=synthetic.vocabulary_sentences())


def recipe(output_dir, model, tasks, **overrides):
    values = {"model": model, "output_dir": str(output_dir), "seed": 0, "tasks": tasks,
              "optimizer": {"learning_rate": 1e-3, "warmup_ratio": 0.1},
              "eval": {"every_steps": 10}, "checkpoint": {"every_steps": 10},
              "log_every": 1, "progress_bar": False}
    values.update(overrides)
    return parse_config(values)


def run(output_dir, model, data_dir, tasks, **overrides):
    result = train(recipe(output_dir, model, tasks, **overrides), data_dir=data_dir)
    metrics = os.path.join(result.output_dir, "metrics.jsonl")
    return result, read_metrics(metrics, "train"), read_metrics(metrics, "eval")


def assert_learns(train_records, eval_records, result, min_gain=2.0):
    losses = [r["loss"] for r in train_records]
    assert len(losses) >= 20
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.95 * first, f"loss did not fall: first steps {first:.4f}, last steps {last:.4f}"
    baseline = eval_records[0]
    assert baseline["step"] == 0
    assert result.best_step > 0
    assert result.best_score > baseline["cosine_spearman"] + min_gain, \
        f"dev Spearman {baseline['cosine_spearman']:.2f} -> best {result.best_score:.2f}"


@pytest.fixture(scope="module")
def cosent_run(model_dir, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cosent"
    tasks = [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 16}]
    return run(out, model_dir, data_dir, tasks, epochs=2, export=True)


def test_cosent_learns_and_writes_every_output(cosent_run, data_dir):
    result, train_records, eval_records = cosent_run
    assert_learns(train_records, eval_records, result, min_gain=5.0)
    out = result.output_dir
    for name in ("model/weights.npz", "best_model/config.json", "loss_curve.png", "summary.json",
                 "recipe.json", "checkpoints/checkpoint", "export/tfkosent_export.json",
                 "export/encoder/saved_model.pb"):
        assert os.path.exists(os.path.join(out, name)), name
    import tensorflow as tf
    events = [os.path.join(out, "logs", f) for f in os.listdir(os.path.join(out, "logs"))]
    tags = {v.tag for f in events for e in tf.compat.v1.train.summary_iterator(f) for v in e.summary.value}
    assert {"train/cosent/loss", "train/cosent/learning_rate", "eval/cosine_spearman"} <= tags
    with open(os.path.join(out, "loss_curve.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert result.steps == 50 and json.load(open(os.path.join(out, "summary.json")))["steps"] == 50
    # the final model is the best one, and says so
    from tfkosent import SentenceEncoder
    from tfkosent.evaluation import evaluate_sts
    from tfkosent.model_dir import load_model_dir
    meta = load_model_dir(result.model_dir).config.metadata["training"]
    assert meta["step"] == result.best_step and meta["dev"]["cosine_spearman"] == pytest.approx(result.best_score)
    from tfkosent.data import load_sts
    encoder = SentenceEncoder.load(result.model_dir)
    score = evaluate_sts(lambda s: encoder.encode(s, normalize_embeddings=False),
                         load_sts("korsts-dev", data_dir))
    assert score["cosine_spearman"] == pytest.approx(result.best_score, abs=1e-3)
    # the dev log scores unit vectors, as `tfkosent evaluate` does: its dot and euclidean
    # metrics (and avg) are evaluate's, and rank like cosine
    last = eval_records[-1]
    assert last["dot_spearman"] == pytest.approx(last["cosine_spearman"], abs=1e-3)
    assert last["euclidean_spearman"] == pytest.approx(last["cosine_spearman"], abs=1e-3)


OBJECTIVES = {  # name: (task, recipe overrides)
    "cosine_mse": ({"loss": "cosine_mse", "data": ["korsts-train"], "batch_size": 16},
                   {"epochs": 3, "optimizer": {"learning_rate": 2e-3}}),
    "angle": ({"loss": {"type": "angle", "cosine_weight": 1.0}, "data": ["korsts-train"], "batch_size": 16},
              {}),
    "simcse_supervised": ({"loss": "simcse_supervised", "data": ["klue-nli-train"], "batch_size": 16},
                          {"epochs": 2}),
    "multiple_negatives_ranking": ({"loss": "multiple_negatives_ranking", "data": ["parakqc"],
                                    "batch_size": 16}, {}),
}


def test_stop_at_step_ends_early_on_the_full_runs_learning_rate(cosent_run, model_dir, data_dir, tmp_path):
    """`stop_at_step` runs a prefix of a longer schedule (the GPU probe's teacher: a 4-epoch
    schedule kept after epoch 2); `max_steps` instead shortens the schedule itself."""
    _, full, _ = cosent_run
    tasks = [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 16}]
    half = len(full) // 2
    _, prefix, _ = run(tmp_path / "prefix", model_dir, data_dir, tasks, epochs=2, stop_at_step=half, eval=None)
    _, capped, _ = run(tmp_path / "capped", model_dir, data_dir, tasks, epochs=2, max_steps=half, eval=None)
    assert [r["step"] for r in prefix] == [r["step"] for r in full[:half]]
    np.testing.assert_allclose([r["learning_rate"] for r in prefix],
                               [r["learning_rate"] for r in full[:half]], rtol=1e-6)
    assert prefix[-1]["learning_rate"] > 0.4 * max(r["learning_rate"] for r in full)
    assert capped[-1]["learning_rate"] < 0.1 * max(r["learning_rate"] for r in full)


def test_length_chunks_train_the_same_steps_with_less_padding(data_dir, tmp_path):
    """`length_chunks` changes how a batch is computed, not what it is: without dropout, a run
    whose uniform batches are encoded in 4 length-sorted chunks takes the same steps."""
    model = testing.write_tiny_model(str(tmp_path / "tiny_no_dropout"), dropout_rate=0.0,
                                     sentences=synthetic.vocabulary_sentences())
    tasks = [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 16}]
    common = dict(bucket_batches=1, eval={"every_steps": 0, "at_start": True}, max_steps=12)
    _, whole, whole_eval = run(tmp_path / "whole", model, data_dir, tasks, **common)
    _, chunked, chunked_eval = run(tmp_path / "chunked", model, data_dir, tasks, length_chunks=4, **common)
    assert len(whole) == len(chunked) == 12
    np.testing.assert_allclose([r["loss"] for r in chunked], [r["loss"] for r in whole], rtol=2e-4)
    assert chunked_eval[-1]["cosine_spearman"] == pytest.approx(whole_eval[-1]["cosine_spearman"], abs=0.05)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_learns(name, model_dir, data_dir, tmp_path):
    task, overrides = OBJECTIVES[name]
    result, train_records, eval_records = run(tmp_path / name, model_dir, data_dir, [task], **overrides)
    assert_learns(train_records, eval_records, result)


def test_unsupervised_simcse_undoes_a_collapsed_representation(model_dir, data_dir, tmp_path):
    """Unlabeled sentences cannot teach synonyms, so this starts from a collapsed encoder
    instead: position embeddings x5 make its embeddings encode mostly sentence length
    (the kind of degenerate, anisotropic space SimCSE's instance discrimination spreads
    out, Gao et al. 2021 section 5).  Telling same-length sentences apart forces content
    back into the embedding, and the dev Spearman rises."""
    from tfkosent.model_dir import load_model_dir, save_model_dir

    files = load_model_dir(model_dir)
    weights = dict(files.weights)
    weights["embeddings/position_embeddings"] = weights["embeddings/position_embeddings"] * 5.0
    collapsed = save_model_dir(str(tmp_path / "collapsed"), files.config, weights,
                               sentencepiece_proto=files.sentencepiece_proto)
    task = {"loss": "simcse_unsupervised", "data": ["3i4k"], "batch_size": 16}
    result, train_records, eval_records = run(tmp_path / "simcse", collapsed, data_dir, [task])
    assert_learns(train_records, eval_records, result)


@pytest.mark.parametrize("loss", ["distill_mse", "distill_cosine"])
def test_distillation_from_a_trained_teacher(loss, cosent_run, data_dir, tmp_path):
    teacher = cosent_run[0].model_dir
    student = testing.write_tiny_model(str(tmp_path / "student"), seed=1,
                                       sentences=synthetic.vocabulary_sentences())
    task = {"loss": loss, "data": ["3i4k"], "batch_size": 16, "teacher": teacher,
            "teacher_shard_size": 128}
    result, train_records, eval_records = run(tmp_path / "distill", student, data_dir, [task],
                                              epochs=2, optimizer={"learning_rate": 3e-3})
    assert_learns(train_records, eval_records, result)
    cache = os.path.join(result.output_dir, "teacher_cache", loss)
    assert sorted(os.listdir(cache)) == ["manifest.json"] + [f"shard-{i:05d}.npy" for i in range(5)]


def test_distillation_warns_when_the_student_cuts_what_the_teacher_saw(cosent_run, data_dir, tmp_path,
                                                                      caplog):
    teacher = cosent_run[0].model_dir
    task = {"loss": "distill_mse", "data": ["3i4k"], "batch_size": 16, "teacher": teacher,
            "teacher_shard_size": 128}
    with caplog.at_level(logging.WARNING, logger="tfkosent.training"):
        run(tmp_path / "short", teacher, data_dir, [task], max_steps=1, max_seq_length=8)
    warned = [r.getMessage() for r in caplog.records if "cut for it" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("tasks[0]: ") and "max_seq_length (8 tokens" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tfkosent.training"):
        run(tmp_path / "whole", teacher, data_dir, [task], max_steps=1)
    assert not [r for r in caplog.records if "cut for it" in r.getMessage()]


def test_hidden_state_distillation_with_an_online_teacher(cosent_run, data_dir, tmp_path):
    """distill_hidden on a 1-layer student cut from the trained 2-layer teacher: the loss falls,
    dev rises, nothing is cached, and the student's layer ends closer to the teacher layer it
    was mapped to (layer 1, from the student's metadata.teacher_layers)."""
    from tfkosent.layers.transformer import TransformerEncoder
    from tfkosent.model_dir import load_model_dir
    from tfkosent.training.student import init_student

    teacher = cosent_run[0].model_dir
    student = init_student(teacher, str(tmp_path / "student"), layers=[1])
    files = load_model_dir(student)
    weights = {k: (v + RNG_NOISE.normal(scale=0.2, size=v.shape).astype(np.float32)
                   if k.startswith("layer_") else v) for k, v in files.weights.items()}
    from tfkosent.model_dir import save_model_dir
    student = save_model_dir(str(tmp_path / "noisy"), files.config, weights,
                             sentencepiece_proto=files.sentencepiece_proto)

    def token_gap(model_dir):
        t_files, s_files = load_model_dir(teacher), load_model_dir(model_dir)
        t = TransformerEncoder.from_weights(t_files.config.encoder, t_files.weights)
        s = TransformerEncoder.from_weights(s_files.config.encoder, s_files.weights)
        ids = np.array([[2, 10, 11, 12, 13, 3], [2, 20, 21, 3, 0, 0]], np.int32)
        inputs = {"input_word_ids": ids, "input_mask": (ids > 0).astype(np.int32),
                  "input_type_ids": np.zeros_like(ids)}
        m = inputs["input_mask"].astype(bool)
        return float(np.mean((np.asarray(s(inputs)["encoder_outputs"][0])[m]
                              - np.asarray(t(inputs)["encoder_outputs"][1])[m]) ** 2))

    task = {"loss": {"type": "distill_hidden"}, "data": ["3i4k"], "batch_size": 16, "teacher": teacher}
    result, train_records, eval_records = run(tmp_path / "hidden", student, data_dir, [task],
                                              epochs=2, optimizer={"learning_rate": 3e-3})
    losses = [r["loss"] for r in train_records]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert result.best_score > eval_records[0]["cosine_spearman"]
    assert not os.path.exists(os.path.join(result.output_dir, "teacher_cache"))
    assert token_gap(result.model_dir) < 0.5 * token_gap(student)


def test_online_teacher_must_tokenize_like_the_student(cosent_run, data_dir, tmp_path):
    from tfkosent.training.config import RecipeError
    other = testing.write_tiny_model(str(tmp_path / "other_vocab"), seed=3)  # its own SentencePiece
    task = {"loss": "distill_hidden", "data": ["3i4k"], "batch_size": 16, "teacher": cosent_run[0].model_dir}
    with pytest.raises(RecipeError, match=r"tasks\[0\]\.teacher: .* tokenizes differently"):
        run(tmp_path / "mismatch", other, data_dir, [task])
    task = dict(task, loss={"type": "distill_hidden", "layer_map": [5]})
    from tfkosent.training.student import init_student
    student = init_student(cosent_run[0].model_dir, str(tmp_path / "cut"), layers=[0])
    with pytest.raises(RecipeError, match=r"layer_map: teacher layer index 5 is out of range"):
        run(tmp_path / "bad_map", student, data_dir, [task])


def test_a_batch_of_one_is_refused_for_losses_that_compare_within_the_batch(model_dir, data_dir, tmp_path):
    """CoSENT, SimCSE and MultipleNegativesRanking are exactly 0 on a batch of 1: nothing trains."""
    from tfkosent.training.config import RecipeError
    for loss, data in (("cosent", "korsts-train"), ("simcse_unsupervised", "3i4k")):
        task = {"loss": loss, "data": [{"name": data, "limit": 8}], "batch_size": 1}
        with pytest.raises(RecipeError, match=rf"tasks\[0\]\.batch_size: 1 over 1 replica\(s\) gives "
                                              rf"each replica 1 example; {loss} compares"):
            run(tmp_path / loss, model_dir, data_dir, [task], eval=None)
    # a per-example loss trains on a batch of 1
    task = {"loss": "cosine_mse", "data": [{"name": "korsts-train", "limit": 2}], "batch_size": 1}
    assert run(tmp_path / "mse", model_dir, data_dir, [task], eval=None)[0].steps == 2


def test_student_recipe_cuts_the_teacher(cosent_run, data_dir, tmp_path):
    from tfkosent import SentenceEncoder
    teacher = cosent_run[0].model_dir
    live = SentenceEncoder.load(teacher)  # a tokenizer alive in the process survives training
    before = live.encode(["나는 밥을 먹는다."])
    config = parse_config({"student": {"teacher": teacher, "layers": [1]}, "output_dir": str(tmp_path / "s"),
                           "tasks": [{"loss": "distill_mse", "data": [{"name": "3i4k", "limit": 64}],
                                      "batch_size": 16}],
                           "eval": None, "progress_bar": False})
    result = train(config, data_dir=data_dir)
    from tfkosent.model_dir import load_model_dir
    files = load_model_dir(result.model_dir)
    assert files.config.encoder.num_layers == 1 and files.config.metadata["teacher_layers"] == [1]
    assert result.steps == 4
    np.testing.assert_array_equal(live.encode(["나는 밥을 먹는다."]), before)


def test_a_trained_model_drops_the_parents_weight_specific_metadata(model_dir, data_dir, tmp_path):
    """Training from a packaged model (or cutting a student from one) must not carry the parent's
    fitted KLUE-STS cut, packaging record or training record: they describe other weights."""
    import shutil
    from tfkosent.config import ModelConfig
    from tfkosent.evaluation.runner import model_f1_threshold
    from tfkosent import SentenceEncoder
    from tfkosent.model_dir import load_model_dir
    from tfkosent.training.student import init_student

    parent = str(tmp_path / "packaged")
    shutil.copytree(model_dir, parent)
    path = os.path.join(parent, "config.json")
    config = ModelConfig.load(path)
    stale = {"klue_f1_cosine_threshold": 0.85, "default_model": {"selected": "x"},
             "training": {"step": 7}, "licence": "MIT", "query_prefix": "query: "}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(ModelConfig(config.encoder, config.preprocess, {**config.metadata, **stale}).to_dict(), f)
    assert model_f1_threshold(SentenceEncoder.load(parent)) == 0.85

    tasks = [{"loss": "cosent", "data": [{"name": "korsts-train", "limit": 32}], "batch_size": 16}]
    result, _, _ = run(tmp_path / "child", parent, data_dir, tasks, eval=None)
    cross, _, _ = run(tmp_path / "cross", parent, data_dir, [{**tasks[0], "loss": "cross_bce"}],
                      model_type="cross_encoder", eval=None)
    student = init_student(parent, str(tmp_path / "student"), layers=[1])
    assert load_model_dir(cross.model_dir).config.metadata["task"] == "cross-encoder"
    for child in (result.model_dir, cross.model_dir, student):
        meta = load_model_dir(child).config.metadata
        assert "klue_f1_cosine_threshold" not in meta and "default_model" not in meta, child
        assert meta["licence"] == "MIT" and meta["query_prefix"] == "query: ", child
        if child != cross.model_dir:
            assert model_f1_threshold(SentenceEncoder.load(child)) is None
    assert load_model_dir(result.model_dir).config.metadata["training"]["base_model"] == parent
    assert "training" not in load_model_dir(student).config.metadata


def test_round_robin_multitask(model_dir, data_dir, tmp_path):
    """(The sequential schedule and the order logic are unit-tested in test_training_units.)"""
    tasks = [{"name": "nli", "loss": "simcse_supervised", "data": [{"name": "klue-nli-train", "limit": 64}],
              "batch_size": 16},
             {"name": "sts", "loss": "cosent", "data": [{"name": "korsts-train", "limit": 32}],
              "batch_size": 16}]
    result, train_records, _ = run(tmp_path / "rr", model_dir, data_dir, tasks, schedule="round_robin",
                                   eval=None, log_batches=True, epochs=1)
    order = [r["task"] for r in read_batch_log(os.path.join(result.output_dir, "batches.jsonl"))]
    assert order == ["nli", "sts", "nli", "sts", "nli", "nli"]
    assert {r["task"] for r in train_records} == {"nli", "sts"}


def test_injected_nan_stops_and_keeps_the_last_good_checkpoint(model_dir, data_dir, tmp_path, monkeypatch):
    import tensorflow as tf
    from tfkosent.training.losses.cosent import CoSENTLoss
    from tfkosent.training.trainer import NonFiniteLossError

    calls = tf.Variable(0)
    original = CoSENTLoss.__call__

    def nan_from_step_13(self, embeddings, labels):
        n = calls.assign_add(1)
        return tf.where(n >= 13, tf.constant(float("nan")), original(self, embeddings, labels))

    monkeypatch.setattr(CoSENTLoss, "__call__", nan_from_step_13)
    out = tmp_path / "nan"
    tasks = [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 16}]
    with pytest.raises(NonFiniteLossError) as info:
        train(recipe(out, model_dir, tasks, checkpoint={"every_steps": 5}, eval=None), data_dir=data_dir)
    message = str(info.value)
    assert "loss is nan at step 13" in message and "last good checkpoint is" in message
    assert message.split("last good checkpoint is ")[1].startswith(str(out / "checkpoints" / "ckpt-10"))
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-10")
    reader = tf.train.load_checkpoint(str(out / "checkpoints" / "ckpt-10"))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 10
    for name in reader.get_variable_to_shape_map():
        if name.startswith("model/"):
            assert np.isfinite(reader.get_tensor(name)).all()
    assert not os.path.exists(out / "model")


def test_a_nan_inside_a_device_loop_names_its_step(model_dir, data_dir, tmp_path, monkeypatch):
    """steps_per_loop 4: the loss turns NaN at step 13, the third step of the loop of steps
    11-14. The error names step 13 (each step of a loop keeps its own loss), and nothing is
    saved past it: the checkpoint of step 10 stays the last. Every batch is padded to one length
    (pad_to_multiple_of = max_seq_length, as on TPU), so the loop runs on static shapes."""
    import tensorflow as tf
    from tfkosent.training.losses.cosent import CoSENTLoss
    from tfkosent.training.trainer import NonFiniteLossError

    calls = tf.Variable(0)
    original = CoSENTLoss.__call__

    def nan_at_step_13(self, embeddings, labels):
        n = calls.assign_add(1)
        return tf.where(n == 13, tf.constant(float("nan")), original(self, embeddings, labels))

    monkeypatch.setattr(CoSENTLoss, "__call__", nan_at_step_13)
    out = tmp_path / "nan_loop"
    tasks = [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 16}]
    with pytest.raises(NonFiniteLossError,
                       match=r"loss is nan at step 13 \(task cosent, epoch 0, batch 12\)") as info:
        train(recipe(out, model_dir, tasks, checkpoint={"every_steps": 10}, eval=None, log_every=100,
                     max_steps=20, steps_per_loop=4, max_seq_length=32, pad_to_multiple_of=32),
              data_dir=data_dir)
    assert "last good checkpoint is " + str(out / "checkpoints" / "ckpt-10") in str(info.value)
    assert int(calls.numpy()) == 20                  # the loops of steps 15-18 and 19-20 ran too
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-10")
    assert not os.path.exists(out / "model")


def test_a_stop_signal_never_saves_past_an_unread_nan_loss(model_dir, data_dir, tmp_path, monkeypatch):
    """SIGTERM arriving while a NaN step's loss is still unread on the device: the save that the
    signal asks for reads it first, so the run stops with NonFiniteLossError and no checkpoint
    (it had checkpointed step 2 and said "continue with --resume")."""
    import signal
    import tensorflow as tf
    from tfkosent.training import trainer as trainer_module
    from tfkosent.training.checkpointing import StopSignals
    from tfkosent.training.losses.cosent import CoSENTLoss
    from tfkosent.training.trainer import NonFiniteLossError

    calls = tf.Variable(0)
    original = CoSENTLoss.__call__

    def nan_from_step_2(self, embeddings, labels):
        n = calls.assign_add(1)
        return tf.where(n >= 2, tf.constant(float("nan")), original(self, embeddings, labels))

    class SignalAfterStep2(StopSignals):
        """SIGTERM from the loop's 4th look on: during step 2 when the loop looked twice a step
        (once to decide whether to read the losses, once to save), which let it save without
        reading them; at step 4 now (one look a step, the save reads them)."""
        looks = 0

        @property
        def received(self):
            SignalAfterStep2.looks += 1
            return signal.SIGTERM if SignalAfterStep2.looks >= 4 else None

        @received.setter
        def received(self, value):
            pass

    monkeypatch.setattr(CoSENTLoss, "__call__", nan_from_step_2)
    monkeypatch.setattr(trainer_module, "StopSignals", SignalAfterStep2)
    out = tmp_path / "stop"
    tasks = [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 16}]
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 2"):
        train(recipe(out, model_dir, tasks, checkpoint={"every_steps": 100}, eval=None, log_every=100,
                     max_steps=5), data_dir=data_dir)
    assert tf.train.latest_checkpoint(str(out / "checkpoints")) is None


def test_losses_are_read_from_the_device_at_log_lines_and_saves_only(model_dir, data_dir, tmp_path, monkeypatch):
    """Each step's loss stays a tensor until a log line, evaluation or checkpoint needs it (one
    read per log_every steps, not one per step); every step's loss is still checked and logged."""
    from tfkosent.training import trainer as trainer_module

    reads = []
    original = trainer_module.Trainer._read_losses

    def counting(self):
        reads.append([p.step for p in self._pending])
        return original(self)

    monkeypatch.setattr(trainer_module.Trainer, "_read_losses", counting)
    tasks = [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 16}]
    result, train_records, _ = run(tmp_path / "lazy", model_dir, data_dir, tasks, log_every=4, eval=None,
                                   checkpoint={"every_steps": 6}, max_steps=14)
    assert result.steps == 14
    batches = [r for r in reads if r]
    assert batches == [[1, 2, 3, 4], [5, 6], [7, 8], [9, 10, 11, 12], [13, 14]]
    assert [r["step"] for r in train_records] == [4, 8, 12, 14]
    assert all(np.isfinite(r["loss"]) for r in train_records)
    assert result.final_loss is not None and np.isfinite(result.final_loss)


def cli(config_path, data_dir, resume=False):
    return train_cli(argparse.Namespace(config=str(config_path), data_dir=data_dir, resume=resume))


def write_recipe(path, model, output_dir, body):
    path.write_text(f"model: {model}\noutput_dir: {output_dir}\nprogress_bar: false\n" + body,
                    encoding="utf-8")
    return path


def test_cli_absurd_learning_rate_reports_non_finite_loss(model_dir, data_dir, tmp_path, capsys):
    path = write_recipe(tmp_path / "lr.yaml", model_dir, tmp_path / "out", (
        "optimizer: {learning_rate: 1.0e+30, warmup_ratio: 0.0, clip_norm: null}\n"
        "eval: null\ncheckpoint: {every_steps: 1}\n"
        "tasks:\n  - loss: cosent\n    data: [korsts-train]\n    batch_size: 16\n"))
    assert cli(path, data_dir) == EXIT_NON_FINITE
    err = capsys.readouterr().err
    assert "tfkosent train: error:" in err and ("loss is nan" in err or "non-finite" in err)
    assert "Lower optimizer.learning_rate" in err
    assert not os.path.exists(tmp_path / "out" / "model")


def test_cli_bad_recipes_and_data(model_dir, data_dir, tmp_path, capsys, monkeypatch):
    tasks = "tasks:\n  - loss: cosent\n    data: [korsts-train]\n    batch_size: 16\n"
    cases = {
        "unknown_key": (tasks + "optimizer: {lr: 0.1}\n", "unknown_key.yaml:8: optimizer.lr: unknown key 'lr'"),
        "wrong_type": (tasks.replace("16", "sixteen"), "wrong_type.yaml:7: tasks[0].batch_size: expected int, got str"),
        "missing_file": (tasks.replace("korsts-train", "missing.tsv"), "missing.tsv does not exist"),
        "empty": (tasks.replace("korsts-train", str(tmp_path / "empty.tsv")), "empty.tsv): the dataset is empty"),
        "too_small": (tasks.replace("korsts-train]", "{name: korsts-train, limit: 5}]"),
                      "tasks[0]: 5 examples are fewer than one batch of 16"),
        "missing_registry_file": (tasks.replace("korsts-train", "klue-sts-train"),
                                  "klue-sts/klue_sts_train.csv does not exist"),
        "misspelled_name": (tasks.replace("korsts-train", "korsts-trian"),
                            "data file korsts-trian does not exist (a plain name is read as a path "
                            "unless it is a registry dataset; did you mean korsts-train"),
    }
    (tmp_path / "empty.tsv").write_text("sentence1\tsentence2\tscore\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # relative data paths resolve against the working directory
    for name, (body, expected) in cases.items():
        path = write_recipe(tmp_path / f"{name}.yaml", model_dir, tmp_path / name, body)
        assert cli(path, data_dir) == EXIT_ERROR, name
        err = capsys.readouterr().err
        assert expected in err, (name, err)
        assert not os.path.exists(tmp_path / name / "checkpoints"), name
    path = write_recipe(tmp_path / "no_model.yaml", tmp_path / "no_such_model", tmp_path / "no_model", tasks)
    assert cli(path, data_dir) == EXIT_ERROR
    assert f"model: {tmp_path / 'no_such_model'}: no such model directory" in capsys.readouterr().err


def test_existing_run_needs_resume_and_an_unchanged_recipe(cosent_run, model_dir, data_dir, capsys):
    result = cosent_run[0]
    tasks = [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 16}]
    from tfkosent.training.config import RecipeError
    with pytest.raises(FileExistsError, match="already holds checkpoints.*--resume"):
        train(recipe(result.output_dir, model_dir, tasks, epochs=2), data_dir=data_dir)
    with pytest.raises(RecipeError, match="the recipe changed tasks"):
        train(recipe(result.output_dir, model_dir, [dict(tasks[0], batch_size=8)], epochs=2),
              data_dir=data_dir, resume=True)
    # resuming a finished run redoes nothing and keeps the result (summary.json untouched)
    summary = open(os.path.join(result.output_dir, "summary.json")).read()
    again = train(recipe(result.output_dir, model_dir, tasks, epochs=2), data_dir=data_dir, resume=True)
    assert again.resumed_from == 50 and again.steps == 50 and again.best_score == result.best_score
    assert again.final_loss == result.final_loss is not None
    assert open(os.path.join(result.output_dir, "summary.json")).read() == summary


def test_overwrite_moves_the_old_run_aside_and_a_changed_rate_on_resume_is_recorded(
        model_dir, data_dir, tmp_path, caplog):
    """--overwrite: the failed or unwanted run is renamed, never deleted.  A resume that changes
    an allowed value (the learning rate) keeps the recipe the earlier steps ran under."""
    tasks = [{"loss": "cosent", "data": [{"name": "korsts-train", "limit": 96}], "batch_size": 16}]
    out = tmp_path / "run"
    first = train(recipe(out, model_dir, tasks, stop_at_step=3, eval=None), data_dir=data_dir)
    assert first.steps == 3
    # the CLI's logging set-up (run by other tests in this process) stops propagation: listen here
    training_logger = logging.getLogger("tfkosent.training")
    training_logger.addHandler(caplog.handler)
    try:
        resumed = train(recipe(out, model_dir, tasks, stop_at_step=6, eval=None,
                               optimizer={"learning_rate": 5e-4}), data_dir=data_dir, resume=True)
    finally:
        training_logger.removeHandler(caplog.handler)
    assert (resumed.resumed_from, resumed.steps) == (3, 6)
    kept = json.load(open(out / "recipe.until-step-3.json"))
    assert kept["optimizer"]["learning_rate"] == 1e-3 and kept["stop_at_step"] == 3
    assert json.load(open(out / "recipe.json"))["optimizer"]["learning_rate"] == 5e-4
    assert "optimizer.learning_rate (0.001 -> 0.0005)" in caplog.text

    with pytest.raises(ValueError, match="exclude each other"):
        train(recipe(out, model_dir, tasks, eval=None), data_dir=data_dir, resume=True, overwrite=True)
    again = train(recipe(out, model_dir, tasks, stop_at_step=2, eval=None), data_dir=data_dir, overwrite=True)
    assert again.steps == 2 and again.resumed_from is None
    (moved,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert json.load(open(moved / "summary.json"))["steps"] == 6   # the old run, intact


def test_model_and_teacher_default_are_the_default_model(model_dir, data_dir, tmp_path, monkeypatch):
    """`model: default` fine-tunes the default model (here TFKOSENT_DEFAULT_MODEL, a tiny one) and
    `teacher: default` distills from it, as `--model default` means it on the command line."""
    monkeypatch.setenv("TFKOSENT_DEFAULT_MODEL", model_dir)
    tasks = [{"loss": "cosent", "data": [{"name": "korsts-train", "limit": 32}], "batch_size": 16}]
    result, _, _ = run(tmp_path / "tuned", "default", data_dir, tasks, eval=None)
    assert result.steps == 2
    with np.load(os.path.join(model_dir, "weights.npz")) as start, \
            np.load(os.path.join(result.model_dir, "weights.npz")) as tuned:
        assert start.files == tuned.files
        assert any(not np.allclose(start[k], tuned[k]) for k in start.files)
    distill = [{"loss": "distill_cosine", "teacher": "default",
                "data": [{"name": "korsts-train", "limit": 32}], "batch_size": 16}]
    result, _, _ = run(tmp_path / "student", model_dir, data_dir, distill, eval=None)
    assert result.steps == 2


def test_mixed_precision_bfloat16(model_dir, data_dir, tmp_path):
    tasks = [{"loss": "cosent", "data": [{"name": "korsts-train", "limit": 64}], "batch_size": 16}]
    result, train_records, _ = run(tmp_path / "bf16", model_dir, data_dir, tasks, mixed_precision="bfloat16",
                                   eval=None)
    assert result.steps == 4 and all(np.isfinite(r["loss"]) for r in train_records)


def test_tpu_dev_encoding_uses_few_shapes_and_the_same_embeddings(model_dir, data_dir, tmp_path, monkeypatch):
    """On TPU the dev encoder pads rows to eval.batch_size and lengths to pad_to_multiple_of
    (XLA compiles one program per shape); the padding rows are dropped, so the embeddings
    equal the unpadded path's. The TPU branch runs here on the default strategy."""
    from tfkosent.training import trainer as trainer_module
    from tfkosent.training.trainer import Trainer, eval_batch_rows

    assert [eval_batch_rows(n, 8) for n in (1, 8, 9, 0)] == [8, 8, 16, 8]
    assert [eval_batch_rows(n, 6, replicas=4) for n in (1, 6, 7)] == [8, 8, 12]
    tasks = [{"loss": "cosent", "data": [{"name": "korsts-train", "limit": 32}], "batch_size": 16}]
    trainer = Trainer(recipe(tmp_path / "r", model_dir, tasks, eval={"batch_size": 8}), data_dir=data_dir)
    trainer._setup()                                     # what fit() does first: model, data, state
    sentences = ["나는 밥을 먹는다.", "고양이", "우리는 공원에서 축구를 한다 " * 3, "가", "책을 읽는다"]
    plain = trainer._make_encode_fn()(sentences)
    shapes = []
    real_pack = trainer.preprocessor.bert_pack_inputs

    def recording_pack(segments, seq_length):
        out = real_pack(segments, seq_length)
        shapes.append(tuple(out["input_word_ids"].shape))
        return out
    monkeypatch.setattr(trainer_module, "is_tpu", lambda strategy: True)
    monkeypatch.setattr(trainer.preprocessor, "bert_pack_inputs", recording_pack)
    padded = trainer._make_encode_fn()
    np.testing.assert_allclose(padded(sentences), plain, atol=1e-5)
    np.testing.assert_allclose(padded(sentences[:2]), plain[:2], atol=1e-5)
    multiple = trainer.config.pad_to_multiple_of
    assert all(rows == 8 and length % multiple == 0 for rows, length in shapes), shapes
    trainer.log.close()
