"""Cross-encoders trained by the recipe trainer, and silver pairs (Augmented SBERT).

Tiny models (hidden 32, 2 layers) on synthetic STS data (`tfkosent.training.synthetic`):
the cross-encoder learns, scores both orders, reranks, exports a SavedModel that a
process importing only TensorFlow reproduces, resumes after SIGTERM; silver pairs
exclude evaluation sentences, use exact nearest neighbours, resume their score cache
and load as STS data.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tfkosent import testing
from tfkosent.training import RecipeError, parse_config, synthetic, train
from tfkosent.training.reporting import read_metrics

pytestmark = pytest.mark.filterwarnings("ignore::tfkosent.data.datasets.DatasetCountWarning")

N_DEV_IN_RAW = 20  # dev sentences planted in the raw corpus, which silver must drop


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Synthetic korsts-train (3000 pairs), korsts-dev and 3i4k; the raw corpus also holds
    some korsts-dev sentences (with odd whitespace) that must never become silver pairs."""
    path = synthetic.write_data_dir(str(tmp_path_factory.mktemp("ce_data")), sts_train=3000,
                                    raw=300, datasets=["korsts-train", "korsts-dev", "3i4k"])
    from tfkosent.data import load_sts
    dev = [e.sentence1 for e in load_sts("korsts-dev", path)[:N_DEV_IN_RAW]]
    with open(os.path.join(path, "raw", "3i4k_utterances.txt"), "a", encoding="utf-8") as f:
        f.write("\n".join("  " + s.replace(" ", "   ") for s in dev) + "\n")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return testing.write_tiny_model(str(tmp_path_factory.mktemp("ce_models") / "tiny"),
                                    sentences=synthetic.vocabulary_sentences())


def cross_recipe(output_dir, model, **overrides):
    values = {"model": model, "model_type": "cross_encoder", "output_dir": str(output_dir), "seed": 0,
              "tasks": [{"loss": "cross_bce", "data": ["korsts-train"], "batch_size": 16}],
              "optimizer": {"learning_rate": 1e-3}, "eval": {"every_steps": 25},
              "checkpoint": {"every_steps": 50}, "log_every": 1, "progress_bar": False}
    values.update(overrides)
    return parse_config(values)


@pytest.fixture(scope="module")
def cross_run(model_dir, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ce_runs") / "cross"
    return train(cross_recipe(out, model_dir, max_steps=150, export=True), data_dir=data_dir)


# --------------------------------------------------------------------------- training


def test_cross_encoder_learns_and_saves_a_cross_encoder(cross_run, data_dir):
    from tfkosent.cross_encoder import CrossEncoder
    from tfkosent.data import load_sts
    from tfkosent.evaluation.sts import evaluate_scores
    from tfkosent.model_dir import load_model_dir

    result = cross_run
    evals = read_metrics(os.path.join(result.output_dir, "metrics.jsonl"), "eval")
    assert evals[0]["step"] == 0 and {"spearman", "spearman_ab", "spearman_ba"} <= set(evals[0])
    assert result.steps == 150 and result.best_step > 0
    assert result.best_metric == "spearman"          # no cosine: `tfkosent train` prints this name
    assert result.best_score > evals[0]["spearman"] + 5.0, \
        f"dev Spearman {evals[0]['spearman']:.2f} -> best {result.best_score:.2f}"
    losses = [r["loss"] for r in read_metrics(os.path.join(result.output_dir, "metrics.jsonl"), "train")]
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    files = load_model_dir(result.model_dir)
    assert files.config.metadata["task"] == "cross-encoder"
    assert {"head/kernel", "head/bias"} <= set(files.weights)
    assert files.config.metadata["training"]["step"] == result.best_step
    for name in ("best_model/weights.npz", "loss_curve.png", "summary.json", "export/saved_model.pb"):
        assert os.path.exists(os.path.join(result.output_dir, name)), name
    # the saved model reproduces the dev score that selected it (mean of both orders)
    examples = load_sts("korsts-dev", data_dir)
    model = CrossEncoder.from_model_dir(result.model_dir)
    scores = model.predict([(e.sentence1, e.sentence2) for e in examples])
    assert evaluate_scores(5 * scores, examples)["spearman"] == pytest.approx(result.best_score, abs=1e-3)


def test_recipe_validation(model_dir, tmp_path):
    with pytest.raises(RecipeError, match="cross_bce"):
        cross_recipe(tmp_path, model_dir, tasks=[{"loss": "cosent", "data": ["korsts-train"]}])
    with pytest.raises(RecipeError, match="model_type: cross_encoder"):
        cross_recipe(tmp_path, model_dir, model_type="bi_encoder")
    with pytest.raises(RecipeError, match="swap_pairs"):
        parse_config({"model": model_dir, "output_dir": str(tmp_path), "swap_pairs": True,
                      "tasks": [{"loss": "cosent", "data": ["korsts-train"]}]})
    with pytest.raises(RecipeError, match="model_type"):
        cross_recipe(tmp_path, model_dir, model_type="siamese")
    assert cross_recipe(tmp_path, model_dir, tasks=[{"loss": {"type": "cross_mse"},
                                                     "data": ["korsts-train"]}]).tasks[0].loss.type \
        == "cross_mse"


def test_sigterm_then_resume_matches_an_uninterrupted_run(model_dir, data_dir, tmp_path, monkeypatch):
    from tfkosent.model_dir import load_model_dir
    from tfkosent.training import TrainingInterrupted
    from tfkosent.training.reporting import RunLog

    overrides = dict(max_steps=12, swap_pairs=True, eval={"every_steps": 6, "limit": 40},
                     checkpoint={"every_steps": 100})
    whole = train(cross_recipe(tmp_path / "whole", model_dir, **overrides), data_dir=data_dir)

    batch = RunLog.batch

    def batch_then_sigterm(self, **info):  # SIGTERM arrives during step 5
        batch(self, **info)
        if info["step"] == 5:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(RunLog, "batch", batch_then_sigterm)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(cross_recipe(tmp_path / "split", model_dir, **overrides), data_dir=data_dir)
    assert stopped.value.step == 5
    monkeypatch.setattr(RunLog, "batch", batch)
    with pytest.raises(FileExistsError):
        train(cross_recipe(tmp_path / "split", model_dir, **overrides), data_dir=data_dir)
    resumed = train(cross_recipe(tmp_path / "split", model_dir, **overrides), data_dir=data_dir,
                    resume=True)
    assert (resumed.resumed_from, resumed.steps, resumed.best_step) == (5, 12, whole.best_step)
    assert resumed.best_score == pytest.approx(whole.best_score, abs=1e-6)
    a, b = load_model_dir(whole.model_dir).weights, load_model_dir(resumed.model_dir).weights
    assert set(a) == set(b) and "head/kernel" in a
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)


# --------------------------------------------------------------------------- CrossEncoder API


PAIRS = [("한 남자가 공원에서 축구를 한다.", "어떤 남자가 놀이터에서 풋볼을 해요."),
         ("고양이가 밥을 먹는다.", "선생님이 학교에서 책을 읽는다."),
         ("나는 카페에서 커피를 마신다.", "저는 커피숍에서 아메리카노를 마셔요.")]


def test_predict_scores_both_orders(model_dir):
    from tfkosent.cross_encoder import CrossEncoder

    model = CrossEncoder.from_model_dir(model_dir, allow_new_head=True)  # a bi-encoder + a new (random) head
    ab = model.predict(PAIRS, symmetric=False)
    ba = model.predict([(b, a) for a, b in PAIRS], symmetric=False)
    mean = model.predict(PAIRS)
    assert ab.shape == (3,) and ab.dtype == np.float32 and ((0 <= ab) & (ab <= 1)).all()
    assert np.abs(ab - ba).max() > 1e-4, "segment ids make a random model order-dependent"
    np.testing.assert_allclose(mean, (ab + ba) / 2, atol=1e-6)
    assert np.abs(mean - ab).max() > 1e-5
    assert model.predict([]).shape == (0,)
    with pytest.raises(TypeError):
        model.predict([("only one",)])


def test_predict_and_rerank_check_batch_size(model_dir):
    """batch_size: a positive int (numpy integers too, not bool), as SentenceEncoder.encode's
    (-1 used to return zeros)."""
    import re

    from tfkosent.cross_encoder import CrossEncoder

    model = CrossEncoder.from_model_dir(model_dir, allow_new_head=True)
    expected = model.predict(PAIRS)
    np.testing.assert_allclose(model.predict(PAIRS, batch_size=np.int64(2)), expected, atol=1e-6)
    for bad in (-1, 0, 2.0, True, np.int32(0)):
        message = rf"^batch_size must be a positive int, got {re.escape(repr(bad))}$"
        with pytest.raises(ValueError, match=message):
            model.predict(PAIRS, batch_size=bad)
        with pytest.raises(ValueError, match=message):
            model.rerank(PAIRS[0][0], [b for _, b in PAIRS], batch_size=bad)


def test_rank_has_sentence_transformers_shape(model_dir):
    import tfkosent
    from tfkosent.cross_encoder import CrossEncoder

    assert tfkosent.CrossEncoder is CrossEncoder
    model = CrossEncoder.from_model_dir(model_dir, allow_new_head=True)
    query, documents = PAIRS[0][0], [b for _, b in PAIRS]
    reranked = model.rerank(query, documents)
    ranked = model.rank(query, documents, return_documents=True)
    assert ranked == [{"corpus_id": i, "score": score, "text": text} for i, text, score in reranked]
    assert [set(hit) for hit in model.rank(query, documents, top_k=2)] == [{"corpus_id", "score"}] * 2


def test_predict_of_one_pair_is_one_score(model_dir):
    from tfkosent.cross_encoder import CrossEncoder

    model = CrossEncoder.from_model_dir(model_dir, allow_new_head=True)
    a, b = PAIRS[0]
    score = model.predict((a, b))
    assert isinstance(score, np.float32) and score == model.predict([(a, b)])[0]
    assert model.predict([a, b]) == score
    assert model.predict([(a, b), (b, a)]).shape == (2,)


def test_rerank_top_k_is_none_or_a_positive_int(model_dir):
    """As search's top_k (-1 used to drop the last candidate, 0 to return none)."""
    import re

    from tfkosent.cross_encoder import CrossEncoder

    model = CrossEncoder.from_model_dir(model_dir, allow_new_head=True)
    query, candidates = PAIRS[0][0], [b for _, b in PAIRS]
    assert len(model.rerank(query, candidates)) == len(model.rerank(query, candidates, top_k=None)) == 3
    assert len(model.rerank(query, candidates, top_k=np.int64(2))) == 2
    assert len(model.rerank(query, candidates, top_k=10)) == 3
    for bad in (-1, 0, 1.5, True):
        with pytest.raises(ValueError, match=rf"^top_k must be a positive int, got {re.escape(repr(bad))}$"):
            model.rerank(query, candidates, top_k=bad)


def test_predict_names_the_bad_pair_member(model_dir):
    from tfkosent.cross_encoder import CrossEncoder

    model = CrossEncoder.from_model_dir(model_dir, allow_new_head=True)
    with pytest.raises(TypeError, match=r"^pairs\[0\]\[1\] must be a str, got NoneType \(None\)$"):
        model.predict([("a", None), ("b", "c")])
    with pytest.raises(TypeError, match=r"^pairs\[2\]\[0\] must be a str, got int \(5\)$"):
        model.predict([("a", "b"), ("b", "c"), (5, "d")])
    with pytest.raises(ValueError, match=r"^pairs\[1\]\[1\] is not valid UTF-8"):
        model.predict([("a", "b"), ("b", b"\xff")])
    with pytest.raises(TypeError, match=r"^query must be a str, got NoneType"):
        model.rerank(None, ["a"])
    # a pair longer than the model, both sides together, is truncated with a warning naming it,
    # as encode warns (it was silent); a pair that fits is not
    import warnings

    limit = model.preprocessor.seq_length - 3       # bert packing: [CLS] a [SEP] b [SEP]
    with pytest.warns(UserWarning, match=rf"^1 of 2 pairs are longer than {limit} tokens "
                                         rf"\({limit + 3} with the special tokens\) and were "
                                         rf"truncated \(first: pairs\[1\], \d+ tokens\)$") as caught:
        model.predict([("짧은 문장", "짧다"), ("가나다 " * 40, "라마바 " * 40)])
    assert [w.filename for w in caught] == [__file__]
    # one pair, rerank and rank warn at the caller's line too (they pointed into cross_encoder.py)
    long_pair = ("가나다 " * 40, "라마바 " * 40)
    for call in (lambda: model.predict(long_pair), lambda: model.rerank(*long_pair[:1], [long_pair[1]]),
                 lambda: model.rank(long_pair[0], [long_pair[1]])):
        with pytest.warns(UserWarning, match="truncated") as caught:
            call()
        assert [w.filename for w in caught] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict([("짧은 문장", "짧다")])


def test_a_new_score_head_warns_that_it_is_untrained(model_dir, tmp_path, recwarn):
    from tfkosent.cross_encoder import CrossEncoder

    with pytest.warns(UserWarning, match=r"is not a cross-encoder .*score head is new and untrained, so its "
                                         r"scores are meaningless until it is fine-tuned.*allow_new_head=True"
                                         ) as caught:
        model = CrossEncoder.from_model_dir(model_dir)
    assert [w.filename for w in caught] == [__file__]
    recwarn.clear()
    saved = CrossEncoder.from_model_dir(model_dir, allow_new_head=True).save(str(tmp_path / "ce"))
    reloaded = CrossEncoder.from_model_dir(saved)              # has a head: nothing to say
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    assert reloaded.predict(PAIRS).shape == model.predict(PAIRS).shape == (3,)


def test_rerank_orders_by_score(cross_run):
    from tfkosent.cross_encoder import CrossEncoder

    model = CrossEncoder.from_model_dir(cross_run.model_dir)
    query = "한 남자가 공원에서 축구를 한다."
    candidates = [b for _, b in PAIRS] + ["한 남자가 공원에서 축구를 한다.", "어떤 남자가 공원에서 풋볼을 해요."]
    ranked = model.rerank(query, candidates)
    expected = model.predict([(query, c) for c in candidates])
    assert sorted(i for i, _, _ in ranked) == list(range(len(candidates)))
    assert [s for _, _, s in ranked] == sorted(expected.tolist(), reverse=True)
    for i, text, score in ranked:
        assert text == candidates[i] and score == pytest.approx(float(expected[i]), abs=1e-6)
    assert len(model.rerank(query, candidates, top_k=2)) == 2
    once = model.rank(query, candidates, symmetric=False)   # (query, candidate) only, as in ST
    one_order = model.predict([(query, c) for c in candidates], symmetric=False)
    assert [h["score"] for h in once] == pytest.approx(sorted(one_order.tolist(), reverse=True), abs=1e-6)
    assert CrossEncoder.load(cross_run.model_dir).predict((query, candidates[0])) == \
        pytest.approx(float(expected[0]), abs=1e-6)


def test_load_and_construction_errors_and_array_pairs(model_dir):
    from tfkosent.cross_encoder import CrossEncoder

    with pytest.raises(TypeError, match=r"CrossEncoder.load\("):
        CrossEncoder(model_dir)
    with pytest.raises(ValueError, match="not a trained cross-encoder"):
        CrossEncoder.load(model_dir)
    model = CrossEncoder.from_model_dir(model_dir, allow_new_head=True)
    np.testing.assert_allclose(model.predict(np.array(PAIRS)), model.predict(PAIRS), atol=1e-6)
    with pytest.raises(TypeError, match=r"pairs must be \[n, 2\]"):
        model.predict(np.array([p[0] for p in PAIRS]))


def test_export_reloads_with_tensorflow_only(cross_run, tmp_path):
    from tfkosent.cross_encoder import CrossEncoder

    export = os.path.join(cross_run.output_dir, "export")
    first, second = [a for a, _ in PAIRS] + ["", "가" * 300], [b for _, b in PAIRS] + ["빈", "짧다"]
    script = (
        "import json, sys\n"
        "import tensorflow as tf, tensorflow_text\n"
        "fn = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "a, b = json.loads(sys.argv[2]), json.loads(sys.argv[3])\n"
        "out = fn(sentences1=tf.constant(a), sentences2=tf.constant(b))['scores'].numpy()\n"
        "assert not [m for m in sys.modules if m.startswith('tfkosent')]\n"
        "print(json.dumps(out.tolist()))\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, export, json.dumps(first), json.dumps(second)],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]), np.float32)
    cross = CrossEncoder.from_model_dir(cross_run.model_dir)
    expected = cross.predict(list(zip(first, second)), symmetric=False)
    assert np.abs(got - expected).max() <= 1e-5
    # each weight stored once (tracking the Keras layers too stored every value twice)
    import tensorflow as tf
    num_weights = sum(int(np.prod(v.shape)) for v in cross.encoder.weights + cross.head.weights)
    stored = tf.train.list_variables(os.path.join(export, "variables", "variables"))
    values = sum(int(np.prod(shape)) for name, shape in stored if name != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert num_weights <= values < num_weights * 1.01, (values, num_weights)


def test_evaluate_cli_on_a_cross_encoder(cross_run, data_dir, tmp_path, capsys):
    from tfkosent.cli import main

    out = tmp_path / "eval.json"
    assert main(["evaluate", cross_run.model_dir, "--cross-encoder", "--tasks", "korsts-dev",
                 "--data-dir", data_dir, "--limit", "60", "--json", str(out),
                 "--plot", str(tmp_path / "plots")]) == 0
    assert "Spearman" in capsys.readouterr().out
    assert (tmp_path / "plots" / "korsts-dev.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads(out.read_text())["results"]["korsts-dev"]
    assert metrics["n"] == 60 and {"spearman", "spearman_ab", "spearman_ba"} <= set(metrics)


# --------------------------------------------------------------------------- silver pairs


def test_candidate_sentences_exclude_evaluation_sentences(data_dir):
    from tfkosent.training import silver

    dev = silver.evaluation_sentences(data_dir, ["korsts-dev"])
    everything = silver.collect_sentences(["korsts-train", "3i4k"], data_dir)
    assert len(set(everything) & dev) >= N_DEV_IN_RAW  # planted (with other whitespace)
    kept = silver.collect_sentences(["korsts-train", "3i4k"], data_dir, exclude=dev)
    assert kept and not set(kept) & dev
    assert len(kept) == len(set(kept)) and set(kept) <= set(everything)
    assert len(silver.collect_sentences(["3i4k:50"], data_dir)) == 50
    for bad in (["korsts-dev"], ["klue-sts-dev"], ["korsts-test"]):
        with pytest.raises(silver.SilverError, match="evaluation set"):
            silver.collect_sentences(bad, data_dir)
    with pytest.raises(silver.SilverError, match="unknown source"):
        silver.collect_sentences(["no-such-corpus"], data_dir)


def test_nearest_neighbors_match_brute_force():
    from tfkosent.training.silver import nearest_neighbors, sample_pairs

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(53, 8)).astype(np.float32)
    indices, sims = nearest_neighbors(emb, k=5, chunk_size=7)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    full = unit @ unit.T
    np.fill_diagonal(full, -np.inf)
    brute = np.argsort(-full, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(indices, brute)
    np.testing.assert_allclose(sims, np.take_along_axis(full, brute, axis=1), atol=1e-5)
    assert nearest_neighbors(emb[:3], k=10)[0].shape == (3, 2)

    sentences = [f"문장 {i}" for i in range(53)]
    pairs = sample_pairs(sentences, emb, neighbors=2, random_pairs=40, seed=3)
    keys = [tuple(sorted(p)) for p in pairs]
    assert len(keys) == len(set(keys)) and all(a != b for a, b in pairs)
    for i in range(53):  # every sentence's 2 nearest neighbours are candidates
        for j in brute[i, :2]:
            assert tuple(sorted((sentences[i], sentences[j]))) in set(keys)
    neighbour_only = sample_pairs(sentences, emb, neighbors=2, random_pairs=0)
    assert len(pairs) == len(neighbour_only) + 40
    assert pairs == sample_pairs(sentences, emb, neighbors=2, random_pairs=40, seed=3)
    assert pairs != sample_pairs(sentences, emb, neighbors=2, random_pairs=40, seed=4)


def test_sample_pairs_at_neighbour_ranks():
    from tfkosent.training.silver import SilverError, sample_pairs

    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 8)).astype(np.float32)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    full = unit @ unit.T
    np.fill_diagonal(full, -np.inf)
    brute = np.argsort(-full, axis=1, kind="stable")
    sentences = [f"문장 {i}" for i in range(40)]
    key = lambda a, b: tuple(sorted((a, b)))
    # rank 1 is the nearest neighbour: the same pairs as neighbors=1
    assert sample_pairs(sentences, emb, 0, 0, neighbor_ranks=[1]) == sample_pairs(sentences, emb, 1, 0)
    tenth = sample_pairs(sentences, emb, neighbors=3, random_pairs=0, neighbor_ranks=[10])
    expected = {key(sentences[i], sentences[brute[i, 9]]) for i in range(40)}
    assert {key(a, b) for a, b in tenth} == expected            # neighbors is ignored once ranks are given
    assert not {key(sentences[i], sentences[brute[i, 0]]) for i in range(40)} <= expected
    both = sample_pairs(sentences, emb, 0, 0, neighbor_ranks=[10, 1])
    assert {key(a, b) for a, b in both} == expected | {key(a, b) for a, b in sample_pairs(sentences, emb, 1, 0)}
    # ranks past the pool's size pair nothing; bad ranks are named
    assert sample_pairs(sentences[:5], emb[:5], 0, 0, neighbor_ranks=[10]) == []
    for bad in ([0], [2, 2], [-1]):
        with pytest.raises(SilverError, match="neighbor_ranks"):
            sample_pairs(sentences, emb, 0, 0, neighbor_ranks=bad)


def test_pair_score_cache_resumes_without_rescoring(tmp_path):
    from tfkosent.training.silver import PairScoreCache, SilverError

    pairs = [(f"a{i}", f"b{i}") for i in range(23)]
    calls = []

    class Killed(Exception):
        pass

    def score(chunk, die_at=None):
        if die_at is not None and len(calls) == die_at:
            raise Killed
        calls.append(len(chunk))
        return np.asarray([int(a[1:]) / 100 for a, _ in chunk], np.float32)

    cache = PairScoreCache(str(tmp_path / "c"), pairs, {"model": "x"}, shard_size=5)
    with pytest.raises(Killed):
        cache.build(lambda chunk: score(chunk, die_at=2), batch_size=5)
    assert cache.missing_shards() == [2, 3, 4]
    mtimes = {f: os.stat(tmp_path / "c" / f).st_mtime_ns for f in os.listdir(tmp_path / "c")}
    result = PairScoreCache(str(tmp_path / "c"), pairs, {"model": "x"}, 5).build(score, 5)
    assert calls == [5, 5, 5, 5, 3]  # 2 before the kill, then only the 3 missing shards
    np.testing.assert_allclose(result, np.arange(23) / 100, atol=1e-7)
    for f in ("shard-00000.npy", "shard-00001.npy"):
        assert os.stat(tmp_path / "c" / f).st_mtime_ns == mtimes[f]
    with pytest.raises(SilverError, match="items_sha256"):
        PairScoreCache(str(tmp_path / "c"), pairs[::-1], {"model": "x"}, 5).load()


def test_silver_cli_resumes_and_writes_sts_data(cross_run, model_dir, data_dir, tmp_path, monkeypatch):
    from tfkosent.cli import main
    from tfkosent.cross_encoder import CrossEncoder
    from tfkosent.training import silver
    from tfkosent.training.config import DataSource
    from tfkosent.training.data import load_sts_examples, load_task_data

    out = str(tmp_path / "silver")
    args = ["silver", "--bi-encoder", model_dir, "--cross-encoder", cross_run.model_dir, "--out", out,
            "--sources", "korsts-train:150", "3i4k", "--neighbors", "2", "--random", "30",
            "--data-dir", data_dir, "--shard-size", "150"]
    predict = CrossEncoder.predict
    calls = []

    def predict_then_die(self, pairs, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(len(pairs))
        return predict(self, pairs, **kwargs)

    monkeypatch.setattr(CrossEncoder, "predict", predict_then_die)
    monkeypatch.setattr(silver, "EVALUATION_SETS", ("korsts-dev",))  # the synthetic data has no others
    with pytest.raises(KeyboardInterrupt):
        silver.build_silver(model_dir, cross_run.model_dir, out, sources=["korsts-train:150", "3i4k"],
                            neighbors=2, random_pairs=30, data_dir=data_dir, shard_size=150,
                            exclude_sets=("korsts-dev",))
    # two finished shards survive the interruption
    assert sorted(f for f in os.listdir(os.path.join(out, "score_cache")) if f.endswith(".npy")) \
        == ["shard-00000.npy", "shard-00001.npy"]
    assert main(args) == 2  # an output directory holding candidates needs --resume
    monkeypatch.setattr(CrossEncoder, "predict", lambda self, pairs, **kw: (calls.append(len(pairs)),
                                                                           predict(self, pairs, **kw))[1])
    assert main(args + ["--resume"]) == 0
    with open(os.path.join(out, "candidates.json")) as f:
        num_pairs = json.load(f)["num_pairs"]
    num_shards = -(-num_pairs // 150)
    assert len(calls) == num_shards >= 4  # 2 shards before the kill + only the missing ones after

    path = os.path.join(out, "silver.tsv")
    examples = load_sts_examples(DataSource(path=path, format="sts"))
    assert len(examples) == num_pairs
    assert all(0.0 <= e.score <= 5.0 for e in examples)
    dev = silver.evaluation_sentences(data_dir, ["korsts-dev"])
    assert not {s for e in examples for s in (e.sentence1, e.sentence2)} & dev
    model = CrossEncoder.from_model_dir(cross_run.model_dir)
    head = examples[:8]
    np.testing.assert_allclose([e.score for e in head],
                               5 * model.predict([(e.sentence1, e.sentence2) for e in head]), atol=1e-3)
    # a recipe reads it as a plain path (format from the header) too
    task = load_task_data("scored_pairs", [DataSource(path=path)])
    assert len(task) == num_pairs
    # and --resume on a finished run rescores nothing
    calls.clear()
    assert main(args + ["--resume"]) == 0 and calls == []


def test_silver_scored_by_a_bi_encoder(model_dir, data_dir, tmp_path, monkeypatch, capsys):
    """`--scorer` with a bi-encoder: each pair's score is 5 x its clipped cosine under that model,
    and the summary says which kind of model scored."""
    from tfkosent import SentenceEncoder
    from tfkosent.cli import main
    from tfkosent.training import silver
    from tfkosent.training.config import DataSource
    from tfkosent.training.data import load_sts_examples

    monkeypatch.setattr(silver, "EVALUATION_SETS", ("korsts-dev",))  # the synthetic data has no others
    out = str(tmp_path / "silver_bi")
    args = ["silver", "--bi-encoder", model_dir, "--scorer", model_dir, "--out", out,
            "--sources", "korsts-train:60", "--neighbors", "1", "--random", "10", "--data-dir", data_dir]
    assert main(args) == 0
    examples = load_sts_examples(DataSource(path=os.path.join(out, "silver.tsv"), format="sts"))
    assert len(examples) >= 10
    model = SentenceEncoder.load(model_dir)
    a = model.encode([e.sentence1 for e in examples])
    b = model.encode([e.sentence2 for e in examples])
    expected = 5 * np.clip(np.sum(a * b, axis=1), 0, 1)
    np.testing.assert_allclose([e.score for e in examples], expected, atol=1e-3)
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f)["scorer_kind"] == "bi-encoder"
    # --neighbor-ranks: the candidates were made with other neighbours, so --resume refuses them
    capsys.readouterr()
    assert main(args + ["--resume", "--neighbor-ranks", "3"]) == 2
    assert "cannot resume" in (err := capsys.readouterr().err) and "neighbor_ranks" in err
    far = str(tmp_path / "silver_far")
    assert main([a if a != out else far for a in args] + ["--neighbor-ranks", "3", "--random", "0"]) == 0
    with open(os.path.join(far, "summary.json")) as f:
        summary = json.load(f)
    assert summary["neighbor_ranks"] == [3] and summary["neighbors"] is None and summary["random_pairs"] == 0
    sentences = silver.collect_sentences(["korsts-train:60"], data_dir,
                                         exclude=silver.evaluation_sentences(data_dir, ["korsts-dev"]))
    third = silver.nearest_neighbors(model.encode(sentences), 3)[0][:, 2]
    expected = {tuple(sorted((sentences[i], sentences[j]))) for i, j in enumerate(third)}
    far_pairs = load_sts_examples(DataSource(path=os.path.join(far, "silver.tsv"), format="sts"))
    assert {tuple(sorted((e.sentence1, e.sentence2))) for e in far_pairs} == expected
    capsys.readouterr()
    with pytest.raises(SystemExit):   # one scorer, not both
        main(args[:5] + ["--cross-encoder", model_dir] + args[5:])
    assert "not allowed with argument" in capsys.readouterr().err


def test_combine_scores_maps_each_scorer_onto_the_first_scale():
    from tfkosent.training.silver import SilverError, combine_scores
    rng = np.random.default_rng(0)
    first = rng.uniform(0.05, 0.95, 50)
    second = 0.6 + 0.4 * first + rng.normal(0, 0.02, 50)    # a bi-encoder's narrow cosine band
    slope, intercept = np.polyfit(second, first, 1)
    expected = np.clip((first + slope * second + intercept) / 2, 0, 1)
    np.testing.assert_allclose(combine_scores([first, second]), expected, atol=1e-6)
    # a second scorer that is the first one on another linear scale changes nothing
    np.testing.assert_allclose(combine_scores([first, 0.5 + 0.3 * first]), first, atol=1e-6)
    np.testing.assert_allclose(combine_scores([first]), first, atol=1e-6)
    with pytest.raises(SilverError, match="scorer 2 gave the same score to every pair"):
        combine_scores([first, np.full(50, 0.7)])
    with pytest.raises(SilverError, match="different numbers of pairs"):
        combine_scores([first, second[:10]])


def test_silver_scored_by_a_cross_encoder_and_a_bi_encoder(cross_run, model_dir, data_dir, tmp_path,
                                                            monkeypatch, capsys):
    """Two --scorer: each has its own score cache, silver.tsv holds `combine_scores` of both, and
    adding the second scorer to a finished single-scorer run (--resume) scores only its pairs."""
    from tfkosent.cli import main
    from tfkosent.cross_encoder import CrossEncoder
    from tfkosent.training import silver
    from tfkosent.training.config import DataSource
    from tfkosent.training.data import load_sts_examples

    monkeypatch.setattr(silver, "EVALUATION_SETS", ("korsts-dev",))  # the synthetic data has no others
    out = str(tmp_path / "silver_mix")
    base = ["silver", "--bi-encoder", model_dir, "--out", out, "--sources", "korsts-train:60",
            "--neighbors", "1", "--random", "10", "--data-dir", data_dir]
    assert main(base + ["--scorer", cross_run.model_dir]) == 0
    single = load_sts_examples(DataSource(path=os.path.join(out, "silver.tsv"), format="sts"))
    predict = CrossEncoder.predict
    calls = []
    monkeypatch.setattr(CrossEncoder, "predict", lambda self, pairs, **kw: (calls.append(len(pairs)),
                                                                           predict(self, pairs, **kw))[1])
    assert main(base + ["--scorer", cross_run.model_dir, "--scorer", model_dir, "--resume"]) == 0
    assert calls == []   # the cross-encoder's scores come from its cache
    assert "the mean of 2 scorers" in capsys.readouterr().out
    mixed = load_sts_examples(DataSource(path=os.path.join(out, "silver.tsv"), format="sts"))
    pairs = [(e.sentence1, e.sentence2) for e in mixed]
    assert pairs == [(e.sentence1, e.sentence2) for e in single]
    def cached(name):
        shards = sorted(f for f in os.listdir(os.path.join(out, name)) if f.endswith(".npy"))
        return np.concatenate([np.load(os.path.join(out, name, f)) for f in shards])

    cross, bi = cached("score_cache"), cached("score_cache_2")
    assert len(cross) == len(bi) == len(pairs)
    np.testing.assert_allclose(cross * 5, [e.score for e in single], atol=1e-3)
    np.testing.assert_allclose([e.score for e in mixed], 5 * silver.combine_scores([cross, bi]), atol=1e-3)
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f)["scorer_kinds"] == ["cross-encoder", "bi-encoder"]


def test_silver_stats_compares_labels_on_shared_pairs_in_either_order(tmp_path, capsys):
    from tfkosent.cli import main
    from tfkosent.training.silver import SilverError, compare_silver

    first = tmp_path / "a.tsv"
    first.write_text("sentence1\tsentence2\tscore\n가\t나\t1.0\n다\t라\t3.0\n마\t바\t5.0\n", encoding="utf-8")
    second = tmp_path / "b.tsv"   # two pairs shared (one written the other way round), one new
    second.write_text("sentence1\tsentence2\tscore\n라\t다\t2.0\n가\t나\t1.5\n사\t아\t4.0\n", encoding="utf-8")
    result = compare_silver([str(first), str(second)])
    assert [f["num_pairs"] for f in result["files"]] == [3, 3]
    assert result["files"][0]["mean_score"] == pytest.approx(3.0)
    assert result["files"][1]["mean_score"] == pytest.approx(2.5)
    row = result["against_first"][0]
    assert row["shared_pairs"] == 2
    assert row["mean_abs_diff"] == pytest.approx(0.75)          # |1 - 1.5| and |3 - 2|
    assert row["pearson"] == pytest.approx(1.0)                  # (1, 3) vs (1.5, 2): same order
    assert main(["silver-stats", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert "3 pairs, mean label 3.00" in out and "2 shared pairs" in out
    # a bad line is named by file and line, never skipped
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence1\tsentence2\tscore\n가\t나\t1.0\n다\t라\tmany\n", encoding="utf-8")
    with pytest.raises(SilverError, match=r"bad\.tsv:3: non-numeric score 'many'"):
        compare_silver([str(bad)])
    twice = tmp_path / "twice.tsv"
    twice.write_text("sentence1\tsentence2\tscore\n가\t나\t1.0\n나\t가\t2.0\n", encoding="utf-8")
    with pytest.raises(SilverError, match=r"twice\.tsv:3: the pair is already"):
        compare_silver([str(twice)])
    assert main(["silver-stats", str(bad)]) == 2
    assert "bad.tsv:3" in capsys.readouterr().err


def test_silver_pack_carries_pairs_without_text_and_rebuilds_them_byte_for_byte(
        model_dir, data_dir, tmp_path, monkeypatch, capsys):
    """`tfkosent carry pack-silver` stores pool indices and scores, no sentence; unpack-silver
    (and a pipeline silver step's --adopt) rebuild silver.tsv from the datasets exactly, and
    refuse datasets that give another pool, or a TSV edited by hand."""
    import shutil

    from tfkosent.cli import main
    from tfkosent.pipeline.default_model import Pipeline, PipelineError
    from tfkosent.training import silver

    monkeypatch.setattr(silver, "EVALUATION_SETS", ("korsts-dev",))  # the synthetic data has no others
    out = str(tmp_path / "silver")
    sources = ["korsts-train:80", "3i4k:40"]
    assert main(["silver", "--bi-encoder", model_dir, "--scorer", model_dir, "--out", out, "--sources",
                 *sources, "--neighbors", "1", "--random", "10", "--data-dir", data_dir]) == 0
    with open(os.path.join(out, "silver.tsv"), "rb") as f:
        original = f.read()
    pack = str(tmp_path / "silver.npz")
    assert main(["carry", "pack-silver", out, pack, "--data-dir", data_dir]) == 0
    with np.load(pack) as stored:
        assert sorted(stored.files) == ["meta", "pairs", "scores"]
        meta_text = bytes(stored["meta"]).decode("utf-8")
        assert stored["pairs"].dtype == np.int32 and len(stored["pairs"]) == original.count(b"\n") - 1
    first_sentence = original.decode("utf-8").split("\n")[1].split("\t")[0]
    assert first_sentence not in meta_text

    assert main(["carry", "unpack-silver", pack, str(tmp_path / "back"), "--data-dir", data_dir]) == 0
    with open(tmp_path / "back" / "silver.tsv", "rb") as f:
        assert f.read() == original
    assert "unpacked" in capsys.readouterr().out

    # a pipeline silver step adopts the pack (its --sources must match)
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("steps:\n  - name: silver2\n    kind: silver\n    args:\n      extra_args: [--sources, "
                    + ", ".join(sources) + ", --neighbors, '1']\n  - name: other\n    kind: silver\n"
                    "    args:\n      extra_args: [--sources, korsts-train]\n", encoding="utf-8")
    p = Pipeline(str(spec), work_dir=str(tmp_path / "w"), data_dir=data_dir, log=lambda m: None)
    info = p.adopt("silver2", pack)
    with open(tmp_path / "w" / "silver2" / "silver.tsv", "rb") as f:
        assert f.read() == original
    assert p.state(p.step("silver2")) == "done" and info["outputs"]["pairs"] == original.count(b"\n") - 1
    with pytest.raises(PipelineError, match="packed from sources"):
        p.adopt("other", pack)

    # other dataset files: one training sentence changed -> another pool, refused
    changed = str(tmp_path / "changed_data")
    shutil.copytree(data_dir, changed)
    train_file = os.path.join(changed, "korsts", "sts-train.tsv")
    with open(train_file, encoding="utf-8") as f:
        lines = f.read().split("\n")
    fields = lines[1].split("\t")
    fields[5] = "완전히 다른 문장입니다."  # sentence1 of the first pair
    lines[1] = "\t".join(fields)
    with open(train_file, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    assert main(["carry", "unpack-silver", pack, str(tmp_path / "bad"), "--data-dir", changed]) == 2
    assert "another sentence pool" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "bad" / "silver.tsv")

    # a TSV edited by hand: the line is named
    edited = original.decode("utf-8").split("\n")
    edited[3] = "손으로 쓴 문장\t" + edited[3].split("\t", 1)[1]
    with open(os.path.join(out, "silver.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(edited))
    assert main(["carry", "pack-silver", out, str(tmp_path / "x.npz"), "--data-dir", data_dir]) == 2
    assert "silver.tsv, line 4: sentence1 is not in the pool" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["pack-silver", "unpack-silver"])
def test_carry_silver_checks_the_output_path_before_reading_anything(action, tmp_path, capsys):
    """FILE (pack-silver) and OUT_DIR (unpack-silver) are refused before the silver run, the
    pack or the datasets are read: the inputs here do not exist, so a late check would fail on
    them first (or after rebuilding the sentence pool)."""
    from tfkosent.cli import main

    afile = tmp_path / "a_file"
    afile.write_text("x")
    missing, no_data = str(tmp_path / "missing"), str(tmp_path / "no-data")
    if action == "pack-silver":
        argv, message = [missing, str(afile / "x.npz")], f"FILE {afile}/x.npz: its parent {afile} is a file"
    else:
        argv, message = [missing + ".npz", str(afile)], f"OUT_DIR {afile} is a file, not a directory"
    assert main(["carry", action, *argv, "--data-dir", no_data]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tfkosent carry: error: {message}"), err
    assert "Traceback" not in err


def test_silver_takes_default_and_names_an_export_directory(tmp_path, capsys):
    from tfkosent.cli import main

    export_dir = tmp_path / "exp"
    export_dir.mkdir()
    (export_dir / "tfkosent_export.json").write_text("{}")
    base = ["silver", "--out", str(tmp_path / "s"), "--sources", "korsts-train:10"]
    assert main(base + ["--bi-encoder", str(export_dir), "--scorer", "default"]) == 2
    assert f"--bi-encoder {export_dir}: an export directory; silver needs a tfkosent model directory" \
        in capsys.readouterr().err
    # "default" is the shipped model: the error is now about the other argument
    assert main(base + ["--bi-encoder", "default", "--scorer", str(tmp_path / "nope")]) == 2
    assert f"--scorer {tmp_path / 'nope'}: not a model directory" in capsys.readouterr().err


def test_silver_with_neither_neighbours_nor_random_pairs_is_refused_before_loading(tiny_model_dir,
                                                                                 tmp_path, capsys):
    """(--random -1, --neighbors -1 and --shard-size 0 are refused when parsing:
    test_sentence_encoder.py::test_cli_refuses_bad_counts_when_parsing_naming_the_flag.)"""
    from tfkosent.cli import main
    # no data: a late check would first fail to find (or try to download) the sentence pool
    assert main(["silver", "--bi-encoder", tiny_model_dir, "--scorer", tiny_model_dir, "--out",
                 str(tmp_path / "out"), "--neighbors", "0", "--data-dir", str(tmp_path / "no-data")]) == 2
    assert "no candidate pairs to label: neighbors is 0 (--neighbors 0) and random_pairs is 0 (--random 0)" \
        in capsys.readouterr().err
