"""Building blocks of tfkosent.training: losses, data order, sources, schedules, student, teacher cache."""

import gzip
import json
import math
import logging
import os

import numpy as np
import pytest

from tfkosent.config import ConfigError
from tfkosent.layers.transformer import ENCODER_INPUT_KEYS
from tfkosent.training import data as train_data
from tfkosent.training import multitask
from tfkosent.training.config import DataSource, LossSpec, OptimizerConfig
from tfkosent.training.losses import LOSSES, get_loss_class
from tfkosent.training.losses.core import in_batch_softmax_loss
from tfkosent.training.optimization import WarmupLinearDecay, create_schedule
from tfkosent.training.student import default_student_layers, init_student
from tfkosent.training.teacher_cache import TeacherCache, TeacherCacheError

RNG = np.random.default_rng(0)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def softmax_ce(logits, target):
    logits = logits - logits.max()
    return float(np.log(np.exp(logits).sum()) - logits[target])


# --------------------------------------------------------------------------- losses


def test_registry_builds_every_loss():
    for name in LOSSES:
        loss = LossSpec(name).build()
        assert loss.input_kind in train_data.KINDS
        assert set(loss.views) <= set(train_data.KINDS[loss.input_kind])
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        get_loss_class("nope")


def test_in_batch_softmax_matches_numpy():
    a, p, n = (RNG.normal(size=(5, 8)).astype(np.float32) for _ in range(3))
    groups = np.array([0, 1, 1, 2, 3], np.int32)
    got = float(in_batch_softmax_loss(a, p, n, scale=20.0, groups=groups))
    expected = []
    for i in range(5):
        logits = 20.0 * np.concatenate([unit(p) @ unit(a[i]), unit(n) @ unit(a[i])])
        for j in range(5):
            if j != i and groups[j] == groups[i]:
                logits[j] = -np.inf  # a paraphrase of the anchor is no negative
        expected.append(softmax_ce(logits, i))
    assert got == pytest.approx(np.mean(expected), rel=1e-5)


def test_simcse_and_ranking_losses_use_their_views():
    emb = RNG.normal(size=(4, 3, 8)).astype(np.float32)
    groups = {"group": np.arange(4, dtype=np.int32)}
    unsup = get_loss_class("simcse_unsupervised")()
    sup = get_loss_class("simcse_supervised")()
    mnrl = get_loss_class("multiple_negatives_ranking")(scale=20.0)
    assert unsup.views == ("text", "text") and sup.views == ("anchor", "positive", "negative")
    assert float(unsup(emb[:, :2], groups)) == pytest.approx(
        float(in_batch_softmax_loss(emb[:, 0], emb[:, 1], scale=20.0)), rel=1e-6)
    assert float(sup(emb, groups)) == pytest.approx(
        float(in_batch_softmax_loss(emb[:, 0], emb[:, 1], emb[:, 2], scale=20.0)), rel=1e-6)
    assert float(mnrl(emb[:, :2], groups)) == pytest.approx(float(unsup(emb[:, :2], groups)), rel=1e-6)
    # identical views and distinct sentences: the loss is near its minimum
    same = np.stack([np.eye(4, 8, dtype=np.float32)] * 2, axis=1)
    assert float(unsup(same, groups)) < 1e-6
    # each wrapper passes its groups on: rows 1 and 2 in one group are no negatives of each other
    shared = {"group": np.array([0, 1, 1, 2], np.int32)}
    for loss, views in ((unsup, emb[:, :2]), (sup, emb), (mnrl, emb[:, :2])):
        masked = float(in_batch_softmax_loss(*[views[:, k] for k in range(views.shape[1])],
                                             scale=20.0, groups=shared["group"]))
        assert float(loss(views, shared)) == pytest.approx(masked, rel=1e-6)
        assert abs(masked - float(loss(views, groups))) > 1e-4, type(loss).__name__


def test_cross_encoder_losses_match_their_formulas():
    logits = np.array([-2.0, 0.0, 1.5, 3.0, -0.5], np.float32)
    score = np.array([0.0, 2.5, 4.0, 5.0, 6.0], np.float32)       # 6.0 clips to 1 like 5.0
    target = np.clip(score / 5.0, 0, 1)
    prob = 1 / (1 + np.exp(-logits.astype(np.float64)))
    bce = -np.mean(target * np.log(prob) + (1 - target) * np.log(1 - prob))
    assert float(get_loss_class("cross_bce")()(logits, {"score": score})) == pytest.approx(bce, rel=1e-5)
    mse = np.mean((prob - target) ** 2)
    assert float(get_loss_class("cross_mse")()(logits, {"score": score})) == pytest.approx(mse, rel=1e-5)
    assert float(get_loss_class("cross_mse")(max_score=1.0)(logits, {"score": score / 5})) == \
        pytest.approx(mse, rel=1e-5)


def test_group_ids_hold_across_sources_and_columns(tmp_path):
    """The same sentence from two sources, a sentence in two paraphrase groups, and two pairs
    with one anchor share a group, so that no in-batch loss uses a paraphrase as a negative."""
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text("오늘 날씨가 좋다\n고양이가 잔다\n", encoding="utf-8")
    b.write_text("강아지가 뛴다\n오늘 날씨가 좋다\n", encoding="utf-8")
    data = train_data.load_task_data("sentences", [DataSource(path=str(a)), DataSource(path=str(b))])
    assert data.texts["text"] == ["오늘 날씨가 좋다", "고양이가 잔다", "강아지가 뛴다", "오늘 날씨가 좋다"]
    assert list(data.labels["group"]) == [0, 1, 2, 0]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("anchor\tpositive\nq\tp1\nq\tp2\nr\tp3\ns\tq\n", encoding="utf-8")
    data = train_data.load_task_data("pairs", [DataSource(path=str(pairs))])
    assert list(data.labels["group"]) == [0, 0, 1, 0]       # (s, q): q is row 0's anchor
    groups = tmp_path / "groups.tsv"
    groups.write_text("group\tsentence\ng1\t가\ng1\t나\ng2\t나\ng2\t다\ng3\t라\ng3\t마\n",
                      encoding="utf-8")
    data = train_data.load_task_data("pairs", [DataSource(path=str(groups))])
    assert list(data.labels["group"]) == [0, 0, 1]          # 나 is in g1 and g2: one group


def test_cosent_matches_formula():
    emb = RNG.normal(size=(6, 2, 8)).astype(np.float32)
    score = np.array([0.0, 5.0, 2.5, 2.5, 1.0, 4.0], np.float32)
    got = float(get_loss_class("cosent")()(emb, {"score": score}))
    cos = 20.0 * np.sum(unit(emb[:, 0]) * unit(emb[:, 1]), axis=-1)
    terms = [cos[j] - cos[i] for i in range(6) for j in range(6) if score[i] > score[j]]
    assert got == pytest.approx(math.log(1 + np.exp(terms).sum()), rel=1e-5)
    # cosines in the order of the gold scores cost (almost) nothing, the reverse order a lot
    c = score / 5.0
    pairs = np.stack([np.stack([np.ones(6), np.zeros(6)], 1),
                      np.stack([c, np.sqrt(1 - c ** 2)], 1)], axis=1).astype(np.float32)
    right = float(get_loss_class("cosent")()(pairs, {"score": score}))
    wrong = float(get_loss_class("cosent")()(pairs, {"score": -score}))
    assert right < 0.1 < 10 < wrong


def torch_pairwise_angle_sim(x, y):
    """sentence-transformers' `util.pairwise_angle_sim` (v3), verbatim but for the imports."""
    torch = pytest.importorskip("torch")
    x, y = torch.tensor(x), torch.tensor(y)
    a, b = torch.chunk(x, 2, dim=1)
    c, d = torch.chunk(y, 2, dim=1)
    z = torch.sum(c**2 + d**2, dim=1, keepdim=True)
    re = (a * c + b * d) / z
    im = (b * c - a * d) / z
    dz = torch.sum(a**2 + b**2, dim=1, keepdim=True) ** 0.5
    dw = torch.sum(c**2 + d**2, dim=1, keepdim=True) ** 0.5
    re /= dz / dw
    im /= dz / dw
    norm_angle = torch.sum(torch.concat((re, im), dim=1), dim=1)
    return torch.abs(norm_angle).numpy()


def test_angle_loss_matches_sentence_transformers():
    from tfkosent.training.losses.angle import paired_angle_similarity
    emb = RNG.normal(size=(6, 2, 8)).astype(np.float32)
    score = np.array([0.0, 5.0, 2.5, 2.5, 1.0, 4.0], np.float32)
    sim = torch_pairwise_angle_sim(emb[:, 0], emb[:, 1])
    np.testing.assert_allclose(paired_angle_similarity(emb[:, 0], emb[:, 1]).numpy(), sim, rtol=1e-5)
    terms = [20.0 * (sim[j] - sim[i]) for i in range(6) for j in range(6) if score[i] > score[j]]
    angle = math.log(1 + np.exp(terms).sum())
    assert float(get_loss_class("angle")()(emb, {"score": score})) == pytest.approx(angle, rel=1e-5)
    cosent = float(get_loss_class("cosent")()(emb, {"score": score}))
    combined = get_loss_class("angle")(cosine_weight=0.5)
    assert float(combined(emb, {"score": score})) == pytest.approx(angle + 0.5 * cosent, rel=1e-5)
    with pytest.raises(ValueError, match="cosine_weight must be >= 0"):
        get_loss_class("angle")(cosine_weight=-1.0)


def test_cosine_mse_and_distillation():
    emb = RNG.normal(size=(4, 2, 8)).astype(np.float32)
    score = np.array([0, 1.25, 2.5, 5], np.float32)
    cos = np.sum(unit(emb[:, 0]) * unit(emb[:, 1]), axis=-1)
    assert float(get_loss_class("cosine_mse")()(emb, {"score": score})) == \
        pytest.approx(np.mean((cos - score / 5) ** 2), rel=1e-5)
    teacher = RNG.normal(size=(4, 8)).astype(np.float32)
    loss = get_loss_class("distill_mse")()
    assert loss.requires_teacher
    assert float(loss(emb[:, :1], {"teacher": teacher})) == \
        pytest.approx(np.mean((emb[:, 0] - teacher) ** 2), rel=1e-5)


def test_cosine_distillation_loss_matches_numpy():
    """1 - cos to the teacher, plus the squared gap between the two in-batch cosine matrices
    (diagonal excluded), plus the optional MSE; blind to each sentence's norm."""
    student = RNG.normal(size=(5, 1, 8)).astype(np.float32)
    teacher = RNG.normal(size=(5, 8)).astype(np.float32)
    s, t = unit(student[:, 0]), unit(teacher)
    cosine = np.mean(1 - np.sum(s * t, axis=-1))
    off = ~np.eye(5, dtype=bool)
    similarity = np.mean(((s @ s.T) - (t @ t.T))[off] ** 2)
    mse = np.mean((student[:, 0] - teacher) ** 2)
    loss = get_loss_class("distill_cosine")(cosine_weight=0.5, similarity_weight=2.0, mse_weight=0.1)
    assert loss.requires_teacher and not loss.online_teacher
    assert float(loss(student, {"teacher": teacher})) == \
        pytest.approx(0.5 * cosine + 2.0 * similarity + 0.1 * mse, rel=1e-5)
    default = get_loss_class("distill_cosine")()
    assert float(default(student, {"teacher": teacher})) == pytest.approx(cosine + similarity, rel=1e-5)
    # the student pointing where the teacher points, at any length: zero
    scaled = (teacher * RNG.uniform(0.1, 10, size=(5, 1)).astype(np.float32))[:, None]
    assert float(default(scaled, {"teacher": teacher})) == pytest.approx(0.0, abs=1e-6)
    # one sentence: no pairs, only the cosine term
    assert float(default(student[:1], {"teacher": teacher[:1]})) == \
        pytest.approx(1 - float(np.sum(s[0] * t[0])), rel=1e-5)


def test_hidden_state_distillation_loss_matches_numpy():
    """Embedding MSE + the mean over student layers of the token-state MSE against the
    mapped teacher layer, padding excluded."""
    b, seq, h = 3, 5, 4
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], np.int32)
    teacher = {"pooled_output": RNG.normal(size=(b, h)).astype(np.float32),
               "encoder_outputs": [RNG.normal(size=(b, seq, h)).astype(np.float32) for _ in range(4)]}
    student = {"pooled_output": RNG.normal(size=(b, h)).astype(np.float32),
               "encoder_outputs": [RNG.normal(size=(b, seq, h)).astype(np.float32) for _ in range(2)]}
    # padded positions must not count: make them wildly different
    for s in student["encoder_outputs"]:
        s[mask == 0] = 1e3
    loss = get_loss_class("distill_hidden")(embedding_weight=0.5, hidden_weight=2.0)
    assert loss.requires_teacher and loss.online_teacher
    got = float(loss.distill(student, teacher, mask, layer_map=(1, 3)))
    m = mask.astype(bool)
    hidden = np.mean([np.mean((student["encoder_outputs"][i][m] - teacher["encoder_outputs"][t][m]) ** 2)
                      for i, t in ((0, 1), (1, 3))])
    emb = np.mean((student["pooled_output"] - teacher["pooled_output"]) ** 2)
    assert got == pytest.approx(0.5 * emb + 2.0 * hidden, rel=1e-5)
    # identical outputs on the mapped layers: zero
    same = {"pooled_output": teacher["pooled_output"],
            "encoder_outputs": [teacher["encoder_outputs"][1], teacher["encoder_outputs"][3]]}
    assert float(loss.distill(same, teacher, mask, layer_map=(1, 3))) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(TypeError, match="distill"):
        loss(student["pooled_output"][:, None], {})


# --------------------------------------------------------------------------- data order


def test_epoch_batches_is_a_pure_function_of_seed_and_epoch():
    lengths = RNG.integers(1, 60, size=103)
    a = train_data.epoch_batches(103, 8, seed=3, epoch=1, lengths=lengths, bucket_batches=4)
    b = train_data.epoch_batches(103, 8, seed=3, epoch=1, lengths=lengths, bucket_batches=4)
    c = train_data.epoch_batches(103, 8, seed=3, epoch=2, lengths=lengths, bucket_batches=4)
    assert a.shape == (12, 8) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(set(a.ravel().tolist())) == 96  # no example twice; the remainder dropped
    # length bucketing: much less padding than random batches
    unbucketed = train_data.epoch_batches(103, 8, seed=3, epoch=1)
    padding = lambda bs: int((lengths[bs].max(axis=1, keepdims=True) - lengths[bs]).sum())
    assert padding(a) < padding(unbucketed) / 2
    with pytest.raises(train_data.DataError, match="fewer than one batch"):
        train_data.epoch_batches(3, 8, seed=0, epoch=0)


def test_batch_seq_lengths_round_up_and_cap():
    batches = np.array([[0, 1], [2, 3]])
    lengths = np.array([3, 9, 20, 1])
    got = train_data.batch_seq_lengths(batches, lengths, num_special=2, multiple=8, cap=16)
    assert got.tolist() == [16, 16]
    got = train_data.batch_seq_lengths(batches, lengths, num_special=2, multiple=4, cap=64)
    assert got.tolist() == [12, 24]


def test_schedules():
    assert multitask.interleave({0: 3, 1: 1}) == [(0, 0), (1, 0), (0, 1), (0, 2)]
    assert multitask.interleave({2: 2}) == [(2, 0), (2, 1)]
    seq = multitask.plan_epochs("sequential", [1, 2])
    assert [e.task_epochs for e in seq] == [{0: 0}, {1: 0}, {1: 1}]
    rr = multitask.plan_epochs("round_robin", [2, 2])
    assert [e.task_epochs for e in rr] == [{0: 0, 1: 0}, {0: 1, 1: 1}]
    order = multitask.interleave({0: 3, 1: 1})
    assert multitask.batches_consumed(order, 3) == {0: 2, 1: 1}


def test_warmup_linear_decay():
    schedule = create_schedule(OptimizerConfig(learning_rate=1.0, warmup_ratio=0.1), total_steps=100)
    values = [float(schedule(s)) for s in (0, 5, 10, 55, 100, 120)]
    assert values == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0])
    assert float(WarmupLinearDecay(2.0, 0, 10)(0)) == 2.0
    assert WarmupLinearDecay.from_config(schedule.get_config()).total_steps == 100


def _one_update(gradient, clip_norm, loss_scale=None, shape=(2, 2)):
    """The change one AdamW step makes to zeros(`shape`), with epsilon >> |g| so that the update
    is proportional to the (clipped) gradient; returned divided by Keras' first-step factor
    (-lr * sqrt(1 - beta_2) / epsilon), so it equals g_clipped."""
    import keras
    import tensorflow as tf
    from tfkosent.training.optimization import create_optimizer

    config = OptimizerConfig(learning_rate=1.0, warmup_ratio=0.0, epsilon=1e6, weight_decay=0.0,
                             clip_norm=clip_norm)
    optimizer = create_optimizer(config, 1.0, loss_scaling=loss_scale is not None)
    if loss_scale is not None:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer.inner_optimizer,
                                                        initial_scale=loss_scale)
        gradient = tf.nest.map_structure(lambda t: t * loss_scale, gradient)
    variable = keras.Variable(np.zeros(shape, np.float32))
    optimizer.apply_gradients([(gradient, variable)])
    return -np.asarray(variable.numpy()) * 1e6 / math.sqrt(1.0 - config.beta_2)


def test_optimizer_clips_the_global_norm_of_the_gradient():
    import tensorflow as tf
    g = tf.constant([[30.0, 40.0], [0.0, 0.0]])                    # norm 50
    assert _one_update(g, None) == pytest.approx(g.numpy(), rel=1e-3)
    assert _one_update(g, 1.0) == pytest.approx(g.numpy() / 50, rel=1e-3)
    # under float16 loss scaling the gradient is clipped after unscaling
    assert _one_update(g, 1.0, loss_scale=2.0 ** 10) == pytest.approx(g.numpy() / 50, rel=1e-3)
    # a word-embedding gradient: two rows for the same token add up to [6, 8] (norm 10), which
    # clipping at 5 halves; the rows' own norm (sqrt(50)) would give [4.24, 5.66]
    rows = tf.IndexedSlices(tf.constant([[3.0, 4.0], [3.0, 4.0]]), tf.constant([0, 0]),
                            tf.constant([2, 2]))
    assert _one_update(rows, 5.0) == pytest.approx(np.array([[3.0, 4.0], [0.0, 0.0]]), rel=1e-3)


# --------------------------------------------------------------------------- sources


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(kind, path, fmt=None, limit=None):
    return train_data.load_task_data(kind, [DataSource(path=str(path), format=fmt, limit=limit)],
                                     where="tasks[0].data", loss_name="x")


def test_file_sources_in_every_format(tmp_path):
    sts = write_lines(tmp_path / "sts.tsv", ["sentence1\tsentence2\tscore", "가\t나\t4.5", "다\t라\t0"])
    data = load("scored_pairs", sts)
    assert data.texts["sentence1"] == ["가", "다"] and data.labels["score"].tolist() == [4.5, 0.0]
    assert load("sentences", sts).texts["text"] == ["가", "나", "다", "라"]
    nli = write_lines(tmp_path / "nli.tsv", ["premise\thypothesis\tlabel", "p\te\tentailment",
                                             "p\tc\tcontradiction", "q\tn\tneutral"])
    assert load("triplets", nli).texts == {"anchor": ["p"], "positive": ["e"], "negative": ["c"]}
    assert load("pairs", nli).texts == {"anchor": ["p"], "positive": ["e"]}
    groups = write_lines(tmp_path / "g.tsv", ["group\tsentence", "a\tx1", "a\tx2", "a\tx3", "b\ty1", "b\ty2"])
    pairs = load("pairs", groups)
    assert pairs.texts["anchor"] == ["x1", "x2", "y1"] and pairs.labels["group"].tolist() == [0, 0, 1]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(json.dumps({"anchor": a, "positive": b, "negative": c})
                               for a, b, c in [("a", "b", "c"), ("d", "e", "f")]) + "\n", encoding="utf-8")
    assert load("triplets", jsonl, limit=1).texts["negative"] == ["c"]
    txt = tmp_path / "raw.txt.gz"
    with gzip.open(txt, "wt", encoding="utf-8") as f:
        f.write("하나\n\n둘\n하나\n")
    assert load("sentences", txt).texts["text"] == ["하나", "둘"]


def test_source_errors_name_the_source_and_file(tmp_path):
    with pytest.raises(train_data.DataError, match=r"tasks\[0\].data\[0\] \(.*nope.tsv\): data file .*nope.tsv does not exist"):
        load("scored_pairs", tmp_path / "nope.tsv")
    empty = write_lines(tmp_path / "empty.tsv", ["sentence1\tsentence2\tscore"])
    with pytest.raises(train_data.DataError, match="empty.tsv.*the dataset is empty"):
        load("scored_pairs", empty)
    bad = write_lines(tmp_path / "bad.tsv", ["sentence1\tsentence2\tscore", "가\t나"])
    with pytest.raises(train_data.DataError, match=r"bad.tsv:2: expected 3 tab-separated columns"):
        load("scored_pairs", bad)
    nli = write_lines(tmp_path / "nli.tsv", ["premise\thypothesis\tlabel", "p\th\tneutral"])
    with pytest.raises(train_data.DataError, match="nli data cannot feed loss 'x', which trains on scored_pairs"):
        load("scored_pairs", nli)
    with pytest.raises(train_data.DataError, match="yields no triplets examples"):
        load("triplets", nli)
    with pytest.raises(train_data.DataError, match=r"data\[0\] \(korsts-train\): dataset 'korsts-train': .*sts-train.tsv does not exist"):
        train_data.load_task_data("scored_pairs", [DataSource(name="korsts-train")], str(tmp_path), where="tasks[0].data")


@pytest.mark.parametrize("name, content, message", [
    ("utf8.tsv", b"sentence1\tsentence2\tscore\n\xea\xb0\x80\t\xeb\x82\x98\t3\n\xff\xfe\t\xeb\x82\x98\t2\n",
     r"utf8.tsv:3: not valid UTF-8"),
    ("range.tsv", "sentence1\tsentence2\tscore\n가\t나\t3\n다\t라\t7.5\n".encode(),
     r"range.tsv:3: 'score' '7.5' is outside \[0, 5\]"),
    ("bool.jsonl", '{"sentence1": "가", "sentence2": "나", "score": true}\n'.encode(),
     r"bool.jsonl:1: non-numeric score True"),
    ("blank.tsv", "sentence1\tsentence2\tscore\n가\t나\t3\n\n다\t라\t2\n".encode(), r"blank.tsv:3: blank line"),
    ("tabs.tsv", "sentence1\tsentence2\tscore\n가\t나\t3\n\t\t\n다\t라\t2\n".encode(), r"tabs.tsv:3: blank line"),
    ("empty.tsv", "sentence1\tsentence2\tscore\n가\t \t3\n".encode(), r"empty.tsv:2: empty or non-text"),
    ("blank.jsonl", '{"sentence1": "가", "sentence2": "나", "score": 1}\n\n{}\n'.encode(), r"blank.jsonl:2: blank line"),
])
def test_malformed_training_files_name_file_and_line(tmp_path, name, content, message):
    """Bad bytes, scores off the 0-5 scale, blank rows between rows: an error naming the file
    and line, never a silently dropped row or a bare UnicodeDecodeError."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(train_data.DataError, match=message):
        load("scored_pairs", path)


def test_data_file_paths_expand_home_and_variables(tmp_path, monkeypatch):
    write_lines(tmp_path / "s.txt", ["하나", "둘"])
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NAME", "s")
    assert load("sentences", "~/$NAME.txt").texts["text"] == ["하나", "둘"]


def test_training_text_files_bom_cr_and_truncated_gzip(tmp_path):
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeff좋은 문장\r\n\r\n두번째 문장\n".encode())
    assert load("sentences", bom).texts["text"] == ["좋은 문장", "두번째 문장"]   # BOM gone
    cr = tmp_path / "cr.tsv"   # a lone CR inside a field does not end the row
    cr.write_bytes("sentence1\tsentence2\tscore\n가\r나\t다\t3\n".encode())
    assert load("scored_pairs", cr).texts["sentence1"] == ["가\r나"]
    whole = gzip.compress(("문장 하나\n" * 20000).encode())
    truncated = tmp_path / "cut.txt.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(train_data.DataError, match=r"cut.txt.gz:\d+: truncated or corrupt file \(EOFError"):
        load("sentences", truncated)


def test_tokenized_task_and_dataset_pack_to_the_batch_length(tiny_model_dir):
    from tfkosent.layers.preprocessor import Preprocessor
    from tfkosent.model_dir import load_model_dir

    files = load_model_dir(tiny_model_dir)
    pre = Preprocessor.from_config_and_vocab(files.config.preprocess, files.sentencepiece_proto)
    data = train_data.TaskData("sentences", {"text": ["나는 밥을 먹는다", "고양이", "우리는 책을 읽는다", "가"]},
                               {"group": np.arange(4, dtype=np.int32)})
    tokens = train_data.TokenizedTask(data, ("text", "text"), pre.tokenize)
    element = tokens.element_fn(("group",), pre.get_special_tokens_dict(), "bert")
    batches = np.array([[0, 1], [2, 3]])
    ds = train_data.make_dataset(element, batches, np.array([8, 16], np.int32))
    first, second = list(ds)
    assert ds.element_spec["inputs"]["input_word_ids"].shape.as_list() == [None, 2, None]
    assert first["inputs"]["input_word_ids"].shape == (2, 2, 8)
    assert second["inputs"]["input_mask"].shape == (2, 2, 16)
    ids = first["inputs"]["input_word_ids"].numpy()
    assert np.array_equal(ids[:, 0], ids[:, 1]) and (ids[:, :, 0] == 2).all()  # [CLS], both views
    assert first["labels"]["group"].numpy().tolist() == [0, 1]
    # per-replica slices, replica by replica
    one_length = train_data.make_dataset(element, batches, np.array([8, 8], np.int32), num_replicas=2)
    sliced = list(one_length)
    assert [s["labels"]["group"].numpy().tolist() for s in sliced] == [[0], [1], [2], [3]]
    # one length for every batch (e.g. pad_to_multiple_of = max_seq_length): a static shape, as
    # TPUs need
    assert {k: v.shape.as_list() for k, v in one_length.element_spec["inputs"].items()} == \
        {k: [1, 2, 8] for k in ENCODER_INPUT_KEYS}
    assert one_length.element_spec["labels"]["group"].shape.as_list() == [1]
    assert sliced[0]["inputs"]["input_mask"].shape == (1, 2, 8)


# --------------------------------------------------------------------------- student


def test_default_student_layers():
    assert default_student_layers(12, 3) == [3, 7, 11]
    assert default_student_layers(12, 6) == [1, 3, 5, 7, 9, 11]
    assert default_student_layers(2, 1) == [1]
    with pytest.raises(ValueError):
        default_student_layers(2, 3)


def test_init_student_copies_embeddings_and_chosen_layers(tiny_model_dir, tmp_path):
    from tfkosent import SentenceEncoder
    from tfkosent.model_dir import load_model_dir

    teacher = load_model_dir(tiny_model_dir)
    path = init_student(tiny_model_dir, str(tmp_path / "student"), layers=[1])
    student = load_model_dir(path)
    assert student.config.encoder.num_layers == 1 and student.config.metadata["teacher_layers"] == [1]
    assert np.array_equal(student.weights["layer_0/output/kernel"], teacher.weights["layer_1/output/kernel"])
    assert np.array_equal(student.weights["embeddings/word_embeddings"],
                          teacher.weights["embeddings/word_embeddings"])
    full = init_student(tiny_model_dir, str(tmp_path / "full"), num_layers=2)
    sentences = ["나는 밥을 먹는다.", "고양이가 책을 읽는다"]
    np.testing.assert_allclose(SentenceEncoder.load(full).encode(sentences),
                               SentenceEncoder.load(tiny_model_dir).encode(sentences), atol=1e-6)
    with pytest.raises(ValueError, match="teacher layer index 5 is out of range"):
        init_student(tiny_model_dir, str(tmp_path / "bad"), layers=[5])
    with pytest.raises(ValueError, match=r"layers \[1, 0\] are not in increasing order"):
        init_student(tiny_model_dir, str(tmp_path / "bad"), layers=[1, 0])


def test_prune_ffn_keeps_the_largest_neurons_in_order():
    from tfkosent.training.student import prune_ffn
    w_in = np.ones((3, 5), np.float32) * np.array([1, 5, 2, 4, 3], np.float32)   # column norms
    w_out = np.ones((5, 3), np.float32)
    w_out[2] *= 10                                                               # neuron 2: 2*10
    weights = {"layer_0/intermediate/kernel": w_in, "layer_0/intermediate/bias": np.arange(5.0),
               "layer_0/output/kernel": w_out, "other": np.zeros(1)}
    out = prune_ffn(weights, 1, 3)   # importance 1, 5, 20, 4, 3 (x const) -> keep 1, 2, 3
    np.testing.assert_array_equal(out["layer_0/intermediate/bias"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out["layer_0/intermediate/kernel"], w_in[:, [1, 2, 3]])
    np.testing.assert_array_equal(out["layer_0/output/kernel"], w_out[[1, 2, 3]])
    assert out["other"] is weights["other"]
    with pytest.raises(ValueError, match="intermediate_size must be in 1..5"):
        prune_ffn(weights, 1, 6)


def test_init_student_with_a_narrower_ffn(tiny_model_dir, tmp_path):
    """Pruning the FFN to all its neurons changes nothing; fewer neurons give a smaller,
    working encoder whose embeddings stay close to the unpruned student's."""
    from tfkosent import SentenceEncoder
    from tfkosent.model_dir import load_model_dir

    ffn = load_model_dir(tiny_model_dir).config.encoder.intermediate_size
    sentences = ["나는 밥을 먹는다.", "고양이가 책을 읽는다"]
    same = init_student(tiny_model_dir, str(tmp_path / "same"), num_layers=2, intermediate_size=ffn)
    np.testing.assert_allclose(SentenceEncoder.load(same).encode(sentences),
                               SentenceEncoder.load(tiny_model_dir).encode(sentences), atol=1e-6)
    half = init_student(tiny_model_dir, str(tmp_path / "half"), num_layers=2, intermediate_size=ffn // 2)
    files = load_model_dir(half)
    assert files.config.encoder.intermediate_size == ffn // 2
    assert files.config.metadata["ffn_pruned_from"] == ffn
    assert files.weights["layer_1/output/kernel"].shape[0] == ffn // 2
    emb = SentenceEncoder.load(half).encode(sentences)
    assert emb.shape == (2, files.config.encoder.hidden_size) and np.isfinite(emb).all()


# --------------------------------------------------------------------------- teacher cache


def test_teacher_cache_resumes_a_killed_build(tmp_path):
    sentences = [f"문장 {i}" for i in range(23)]
    calls = []

    def encode(batch):
        calls.append(len(batch))
        return np.stack([[len(s), i] for i, s in enumerate(batch)]).astype(np.float32) + len(calls)

    class Killed(Exception):
        pass

    def encode_then_die(batch):
        if len(calls) == 2:
            raise Killed
        return encode(batch)

    cache = TeacherCache(str(tmp_path / "cache"), sentences, {"teacher": "x"}, shard_size=5)
    with pytest.raises(Killed):
        cache.build(encode_then_die, batch_size=5)
    assert cache.missing_shards() == [2, 3, 4]
    assert not [f for f in os.listdir(tmp_path / "cache") if f.endswith(".tmp")]
    done = len(calls)
    result = TeacherCache(str(tmp_path / "cache"), sentences, {"teacher": "x"}, 5).build(encode, 5)
    assert len(calls) - done == 3 and result.shape == (23, 2)  # only the 3 missing shards
    assert np.array_equal(result, cache.load())
    with pytest.raises(TeacherCacheError, match="sentences_sha256"):
        TeacherCache(str(tmp_path / "cache"), sentences[:-1], {"teacher": "x"}, 5).load()
    with pytest.raises(TeacherCacheError, match="teacher"):
        TeacherCache(str(tmp_path / "cache"), sentences, {"teacher": "y"}, 5).load()


def test_cache_build_without_a_bar_logs_each_shard(tmp_path):
    """A build whose stderr is a log file (no progress bar) still says how far it is."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger, handler = logging.getLogger("tfkosent.training"), Collect()
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        TeacherCache(str(tmp_path / "cache"), [f"문장 {i}" for i in range(12)], {"teacher": "x"},
                     shard_size=5).build(lambda b: np.ones((len(b), 2), np.float32), 5)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
    assert [line.split(" written")[0] for line in lines] == [
        "teacher cache: shard 1/3", "teacher cache: shard 2/3", "teacher cache: shard 3/3"]
    assert "3 of the 3 missing shards built" in lines[-1] and "about 0 s left" in lines[-1]


def test_config_error_is_a_value_error():
    assert issubclass(train_data.DataError, ValueError) and issubclass(TeacherCacheError, ValueError)
    assert issubclass(__import__("tfkosent.training.config", fromlist=["RecipeError"]).RecipeError,
                      ConfigError)


# --------------------------------------------------------------------------- reports


def write_metrics(path, evals, last_step):
    """A metrics.jsonl with a start event, eval records {step: score} and train records."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"kind": "event", "step": 0, "message": "start"}) + "\n")
        for step, score in evals.items():
            f.write(json.dumps({"kind": "eval", "step": step, "cosine_spearman": score}) + "\n")
        for step in range(10, last_step + 1, 10):
            f.write(json.dumps({"kind": "train", "step": step, "task": "raw", "loss": 1.0 / step}) + "\n")
    return str(path)


def test_chained_dev_curve_adds_up_steps_and_drops_repeated_starts(tmp_path):
    from tfkosent.training import reporting
    first = write_metrics(tmp_path / "a.jsonl", {0: 60.0, 50: 70.0, 100: 72.0}, 100)
    second = write_metrics(tmp_path / "b.jsonl", {0: 72.0, 40: 73.5, 80: 74.0}, 80)
    assert reporting.chained_dev_curve([first, second]) == \
        [(0, 60.0), (50, 70.0), (100, 72.0), (140, 73.5), (180, 74.0)]
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"kind": "train", "step": 10, "task": "raw", "loss": 1.0}) + "\n")
    with pytest.raises(ValueError, match="empty.jsonl: no evaluation records"):
        reporting.chained_dev_curve([first, str(empty)])
    png = tmp_path / "curves.png"
    assert reporting.main(["--curve", f"mse={first},{second}", "--curve", f"cos={first}",
                           "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        reporting.main(["--curve", f"x={tmp_path / 'missing.jsonl'}", "--out", str(png)])


def test_dev_curve_plot_reads_a_cross_encoders_spearman(tmp_path, monkeypatch):
    """Cross-encoder runs log `spearman` (no cosine): the plot takes each run's own metric."""
    from tfkosent.training import reporting
    cross = tmp_path / "cross.jsonl"
    with open(cross, "w") as f:
        for step, score in ((0, 7.0), (200, 80.4), (400, 81.0)):
            f.write(json.dumps({"kind": "eval", "step": step, "spearman": score, "pearson": score}) + "\n")
    assert reporting._chain([str(cross)], None)[0] == [(0, 7.0), (200, 80.4), (400, 81.0)]
    with pytest.raises(KeyError):
        reporting._chain([str(cross)], "cosine_spearman")
    bi = write_metrics(tmp_path / "bi.jsonl", {0: 60.0, 50: 70.0}, 50)
    png = tmp_path / "both.png"
    assert reporting.main(["--curve", f"ce={cross}", "--curve", f"bi={bi}", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    limits = []  # --ymin cuts the untrained step 0 off the axis
    monkeypatch.setattr(reporting, "_save", lambda fig, ax, path, title: limits.append(ax.get_ylim()) or path)
    reporting.main(["--curve", f"ce={cross}", "--out", str(png)])
    reporting.main(["--curve", f"ce={cross}", "--out", str(png), "--ymin", "79"])
    assert limits[0][0] < 7.0 and limits[1][0] == 79.0 and limits[1][1] > 81.0


# --------------------------------------------------------------------------- length chunks


def _ragged_inputs(files, texts):
    import tensorflow as tf

    from tfkosent.layers.preprocessor import Preprocessor
    pre = Preprocessor.from_config_and_vocab(files.config.preprocess, files.sentencepiece_proto,
                                             seq_length=32)
    packed = pre.bert_pack_inputs([pre.tokenize(tf.constant(texts))], seq_length=32)
    return {k: v for k, v in packed.items()}


@pytest.mark.parametrize("num_chunks", [1, 3, 8, 12])
def test_pooled_in_length_chunks_matches_the_whole_batch(tiny_model_dir, num_chunks):
    import tensorflow as tf

    from tfkosent.model_dir import load_model_dir
    from tfkosent.training.length_chunks import pooled_in_length_chunks

    files = load_model_dir(tiny_model_dir)
    encoder = files.build_encoder()
    texts = ["가", "나는 밥을 먹는다 그리고 우리는 책을 읽는다 오늘은 비가 온다", "고양이", "우리는 책을 읽는다",
             "오늘", "나는 밥을 먹는다", "가 나 다 라 마 바 사 아 자 차 카 타 파 하", "책"]   # 8 sentences
    inputs = _ragged_inputs(files, texts)
    lengths = inputs["input_mask"].numpy().sum(1)
    assert len(set(lengths)) >= 5 and lengths.max() < 32           # ragged, padded at the end
    whole = encoder(inputs, training=False)["pooled_output"].numpy()
    chunked = pooled_in_length_chunks(encoder, inputs, num_chunks, training=False).numpy()
    np.testing.assert_allclose(chunked, whole, atol=2e-5)         # in batch order, not length order
    # the gradient of a loss over the whole batch is the same too
    target = tf.constant(np.random.default_rng(1).normal(size=whole.shape), tf.float32)

    def grads(fn):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(fn() - target))
        return tape.gradient(loss, encoder.trainable_variables)

    g_whole = grads(lambda: encoder(inputs, training=False)["pooled_output"])
    g_chunk = grads(lambda: pooled_in_length_chunks(encoder, inputs, num_chunks, training=False))
    for a, b in zip(g_whole, g_chunk):
        a, b = tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy()
        np.testing.assert_allclose(b, a, atol=1e-4 * max(1.0, np.abs(a).max()))


def test_pooled_in_length_chunks_runs_in_a_graph_with_unknown_batch_and_length(tiny_model_dir):
    import tensorflow as tf

    from tfkosent.model_dir import load_model_dir
    from tfkosent.training.length_chunks import pooled_in_length_chunks

    files = load_model_dir(tiny_model_dir)
    encoder = files.build_encoder()
    spec = {k: tf.TensorSpec([None, None], tf.int32)
            for k in ("input_word_ids", "input_mask", "input_type_ids")}
    fn = tf.function(lambda x: pooled_in_length_chunks(encoder, x, 4, training=True),
                     input_signature=[spec])
    for texts in (["가", "나는 밥을 먹는다", "고양이", "우리는 책을 읽는다 오늘은 비가 온다"], ["책"]):
        out = fn(_ragged_inputs(files, texts))
        assert out.shape == (len(texts), files.config.encoder.hidden_size)
        assert np.isfinite(out.numpy()).all()
    with pytest.raises(ValueError, match="num_chunks must be positive"):
        pooled_in_length_chunks(encoder, _ragged_inputs(files, ["가"]), 0, training=False)


def test_tpu_vms_are_recognised_by_their_device_files(monkeypatch):
    """v2-v4 TPU VMs show /dev/accel*, v5e/v5p/v6e ones /dev/vfio/<n>; /dev/vfio/vfio alone is not a TPU."""
    from tfkosent.training import strategy

    for name in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_WORKER_HOSTNAMES"):
        monkeypatch.delenv(name, raising=False)
    files = {"v4": ["/dev/accel0", "/dev/accel1"], "v5e": ["/dev/vfio/0", "/dev/vfio/vfio"],
             "gpu host": ["/dev/vfio/vfio"], "none": []}
    import fnmatch
    for machine, present in files.items():
        monkeypatch.setattr(strategy.glob, "glob",
                            lambda pattern, present=present: fnmatch.filter(present, pattern))
        assert strategy.tpu_present() == (machine in ("v4", "v5e")), machine


def test_teacher_fingerprint_covers_the_tokenizer(tiny_model_dir, tmp_path):
    """A teacher whose tokenizer changed embeds differently: its cache is refused. A manifest
    written before the tokenizer was fingerprinted is still accepted on the keys it has."""
    import shutil

    from tfkosent.training.teacher_cache import teacher_fingerprint

    teacher = shutil.copytree(tiny_model_dir, tmp_path / "teacher")
    before = teacher_fingerprint(str(teacher))
    assert set(before) == {"config_sha256", "weights_sha256", "tokenizer_sha256"}
    sentences = ["가", "나", "다"]
    cache_dir = str(tmp_path / "cache")
    TeacherCache(cache_dir, sentences, before, shard_size=2).build(lambda s: np.ones((len(s), 4), np.float32))
    tokenizer = next(p for p in teacher.iterdir() if p.name in ("tokenizer.model", "vocab.txt"))
    tokenizer.write_bytes(tokenizer.read_bytes() + b"\n")
    after = teacher_fingerprint(str(teacher))
    assert after["tokenizer_sha256"] != before["tokenizer_sha256"]
    with pytest.raises(TeacherCacheError, match="tokenizer_sha256 differ"):
        TeacherCache(cache_dir, sentences, after, shard_size=2).build(lambda s: np.ones((len(s), 4)))
    manifest = os.path.join(cache_dir, "manifest.json")
    old = json.load(open(manifest))
    del old["fingerprint"]["tokenizer_sha256"]
    with open(manifest, "w") as f:
        json.dump(old, f)
    got = TeacherCache(cache_dir, sentences, after, shard_size=2).build(lambda s: 1 / 0)   # no recompute
    assert got.shape == (3, 4)


def test_angle_similarity_of_a_zero_vector_is_finite():
    from tfkosent.training.losses.angle import paired_angle_similarity
    x = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
    y = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    assert np.isfinite(paired_angle_similarity(x, y).numpy()).all()


def test_evaluation_files_are_refused_by_path_too(shared_data_dir, tmp_path):
    """The recipe checks refuse evaluation sets by name; the same file given by path (or copied
    elsewhere) is refused too, for training data and for the selection set."""
    import shutil

    from tfkosent.data import DATASETS
    from tfkosent.training.data import DataError, load_sts_examples

    test_copy = tmp_path / "mine.tsv"
    shutil.copy(os.path.join(shared_data_dir, DATASETS["korsts-test"].path), test_copy)
    with pytest.raises(DataError, match="is the evaluation set 'korsts-test'"):
        train_data.load_task_data("scored_pairs", [DataSource(path=str(test_copy))])
    with pytest.raises(DataError, match="is the evaluation set 'korsts-test'"):
        load_sts_examples(DataSource(path=str(test_copy)))
    dev = os.path.join(shared_data_dir, DATASETS["korsts-dev"].path)
    with pytest.raises(DataError, match="is the evaluation set 'korsts-dev'"):
        train_data.load_task_data("scored_pairs", [DataSource(path=dev)])
    assert len(load_sts_examples(DataSource(path=dev))) == 1500        # selecting on dev is allowed
    train = os.path.join(shared_data_dir, DATASETS["korsts-train"].path)
    assert len(train_data.load_task_data("scored_pairs", [DataSource(path=train)])) == 5749


def test_remove_interrupted_writes_restores_a_directory_caught_between_renames(tmp_path):
    """A kill between atomic_directory's two renames leaves no NAME, only `.NAME.tmp-*.old`
    (the previous NAME): it is put back. Temporary copies and files of the names go; other
    files stay."""
    from tfkosent.model_dir import remove_interrupted_writes

    old = tmp_path / ".model.tmp-ab12.old"
    old.mkdir()
    (old / "weights.npz").write_bytes(b"previous")
    half = tmp_path / ".model.tmp-cd34"
    half.mkdir()
    (tmp_path / ".summary.json.99.0f0f.tmp").write_text("{")
    (tmp_path / "keep.txt").write_text("mine")
    (tmp_path / "export").mkdir()
    (tmp_path / ".export.tmp-ef56.old").mkdir()           # export/ exists: the .old is a leftover
    touched = remove_interrupted_writes(str(tmp_path), ["model", "export", "summary.json"])
    assert (tmp_path / "model" / "weights.npz").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "keep.txt", "model"]
    assert str(tmp_path / "model") in touched and str(half) in touched
