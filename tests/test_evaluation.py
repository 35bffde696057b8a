"""Tests of tfkosent.evaluation.sts: statistics vs scipy, the protocol, outputs."""

import os
import json
import math
import re
import warnings
import zlib

import numpy as np
import pytest

from tfkosent.data import DATASETS, STSExample, find_local_data_dir
from tfkosent.data.datasets import DatasetCountWarning
from tfkosent.evaluation import (METRIC_KEYS, compute_similarities, cosine_to_score, evaluate_scores,
                                 evaluate_sts, f1_binary, format_markdown_table, pair_similarities,
                                 pearson, plot_scatter, rankdata, run_tasks, spearman, write_json)

stats = pytest.importorskip("scipy.stats")


def hashed_encoder(dim=8):
    """Deterministic fake encoder: a pseudo-random vector per sentence (float32 [n, dim])."""
    def encode(sentences):
        return np.stack([np.random.default_rng(zlib.crc32(s.encode("utf-8"))).normal(size=dim)
                         for s in sentences]).astype(np.float32)
    return encode


def angle_encoder(angles):
    """Maps each sentence to the 2-D unit vector at angles[sentence] radians."""
    def encode(sentences):
        return np.array([[math.cos(angles[s]), math.sin(angles[s])] for s in sentences], np.float32)
    return encode


# --------------------------------------------------------------------------- statistics


def test_rankdata_matches_scipy_average_ranks():
    rng = np.random.default_rng(0)
    for x in (rng.integers(0, 5, size=40), rng.normal(size=25), np.array([3.0, 3.0, 3.0]),
              np.array([2.0, 1.0])):
        np.testing.assert_allclose(rankdata(x), stats.rankdata(x, method="average"))


def test_pearson_and_spearman_match_scipy_with_ties():
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = np.round(rng.normal(size=60), 1)          # many ties
        y = np.round(x + rng.normal(scale=0.7, size=60), 1)
        assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError):
        pearson([1.0, 2.0], [1.0, 2.0, 3.0])


def test_f1_against_hand_counts():
    gold = [1, 1, 1, 0, 0, 0, 1, 0]
    pred = [1, 0, 1, 1, 0, 0, 1, 1]     # TP = 3, FP = 2, FN = 1
    precision, recall = 3 / 5, 3 / 4
    assert f1_binary(gold, pred) == pytest.approx(2 * precision * recall / (precision + recall))
    assert f1_binary([1, 0], [0, 0]) == 0.0           # no true positive
    assert f1_binary([1, 1], [1, 1]) == 1.0


def test_similarity_sign_conventions():
    sims = pair_similarities(np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0]]),
                             np.array([[0.0, 2.0], [1.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(sims["cosine"], [0.0, 1.0, 0.0])         # zero vector -> 0
    np.testing.assert_allclose(sims["dot"], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(sims["euclidean"], [-math.sqrt(5), 0.0, -5.0])
    np.testing.assert_allclose(sims["manhattan"], [-3.0, 0.0, -7.0])
    # identical vectors are the most similar under every measure
    assert all(np.argmax(v[:2]) == 1 for v in sims.values())


# --------------------------------------------------------------------------- protocol


def _examples():
    pairs = [("a", "b", 4.0), ("a", "c", 1.0), ("b", "c", 2.5), ("d", "a", 5.0), ("e", "f", 0.0),
             ("c", "d", 3.0), ("f", "b", 2.0)]
    return [STSExample(s1, s2, score, None) for s1, s2, score in pairs]


def test_evaluate_sts_protocol_and_unique_encoding():
    examples = _examples()
    encode = hashed_encoder()
    calls = []

    def counting(sentences):
        calls.append(list(sentences))
        return encode(sentences)

    result = evaluate_sts(counting, examples, batch_size=4)
    encoded = [s for batch in calls for s in batch]
    assert sorted(encoded) == ["a", "b", "c", "d", "e", "f"]          # each unique sentence once
    assert max(len(b) for b in calls) <= 4

    emb = {s: v for s, v in zip("abcdef", encode(list("abcdef")))}
    u = np.array([emb[e.sentence1] for e in examples], np.float64)
    v = np.array([emb[e.sentence2] for e in examples], np.float64)
    gold = [e.score for e in examples]
    expected = {
        "cosine": (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1),
        "euclidean": -np.linalg.norm(u - v, axis=1),
        "manhattan": -np.abs(u - v).sum(1),
        "dot": (u * v).sum(1),
    }
    for sim, values in expected.items():
        assert result[f"{sim}_pearson"] == pytest.approx(100 * stats.pearsonr(values, gold)[0], abs=1e-6)
        assert result[f"{sim}_spearman"] == pytest.approx(100 * stats.spearmanr(values, gold)[0], abs=1e-6)
    assert result["avg"] == pytest.approx(np.mean([result[k] for k in METRIC_KEYS]))
    assert len(METRIC_KEYS) == 8 and result["n"] == len(examples)
    assert "f1" not in result and "pearson" not in result              # KorSTS: no binary labels


def test_perfect_encoder_scores_100():
    gold = [0.0, 1.0, 2.5, 4.0, 5.0]
    angles = {"x": 0.0}
    examples = []
    for i, score in enumerate(gold):
        angles[f"y{i}"] = math.acos(score / 5)                          # cosine = score / 5
        examples.append(STSExample("x", f"y{i}", score, None))
    result = evaluate_sts(angle_encoder(angles), examples)
    assert result["cosine_pearson"] == pytest.approx(100.0)
    assert result["cosine_spearman"] == pytest.approx(100.0)
    assert result["euclidean_spearman"] == pytest.approx(100.0)
    assert result["manhattan_spearman"] == pytest.approx(100.0)


def test_klue_metrics_mapping_and_f1():
    cosines = [0.95, 0.7, 0.55, 0.61, -0.2, 0.1, 0.8]
    gold = [4.8, 2.0, 3.5, 3.0, 0.0, 0.5, 4.0]
    binary = [int(g >= 3) for g in gold]                 # 1, 0, 1, 1, 0, 0, 1
    angles = {"x": 0.0}
    angles.update({f"y{i}": math.acos(c) for i, c in enumerate(cosines)})
    examples = [STSExample("x", f"y{i}", g, b) for i, (g, b) in enumerate(zip(gold, binary))]
    result = evaluate_sts(angle_encoder(angles), examples)
    predicted = [5 * min(max(c, 0.0), 1.0) for c in cosines]
    np.testing.assert_allclose(cosine_to_score(cosines), predicted)
    # predicted >= 3  <=>  cosine >= 0.6: 1, 1, 0, 1, 0, 0, 1  -> TP 3, FP 1, FN 1
    assert result["f1"] == pytest.approx(100 * 2 * 3 / (2 * 3 + 1 + 1), abs=1e-4)
    assert result["pearson"] == pytest.approx(100 * stats.pearsonr(predicted, gold)[0], abs=1e-4)


def test_evaluate_scores_for_cross_encoders():
    examples = [STSExample(f"a{i}", f"b{i}", g, int(g >= 3)) for i, g in enumerate([0.5, 3.5, 4.0, 2.0])]
    scores = [1.0, 2.9, 4.5, 3.1]
    result = evaluate_scores(scores, examples)
    gold = [e.score for e in examples]
    assert result["pearson"] == pytest.approx(100 * stats.pearsonr(scores, gold)[0])
    assert result["spearman"] == pytest.approx(100 * stats.spearmanr(scores, gold)[0])
    assert result["f1"] == pytest.approx(100 * 2 * 1 / (2 + 1 + 1))   # TP 1 (4.5), FP 1 (3.1), FN 1 (2.9)
    assert evaluate_scores([0.2, 0.7, 0.9, 0.5], examples, threshold=0.6)["f1"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="3 scores for 4 examples"):
        evaluate_scores([1.0, 2.0, 3.0], examples)


def test_bad_encoder_output_is_rejected():
    with pytest.raises(ValueError, match="expected"):
        evaluate_sts(lambda s: np.zeros((len(s) + 1, 4)), _examples())
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_sts(lambda s: np.full((len(s), 4), np.nan), _examples())


def test_compute_similarities_aligns_pairs():
    examples = _examples()
    sims = compute_similarities(hashed_encoder(), examples, batch_size=2)
    assert set(sims) == {"cosine", "euclidean", "manhattan", "dot"}
    assert all(v.shape == (len(examples),) for v in sims.values())


# --------------------------------------------------------------------------- tasks and outputs


def _write_tiny_korsts(tmp_path, name):
    path = tmp_path / DATASETS[name].path
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2"]
    rows += [f"g\tf\t2012\t{i:04d}\t{e.score:.3f}\t{e.sentence1}\t{e.sentence2}"
             for i, e in enumerate(_examples())]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_run_tasks_on_a_tiny_data_dir(tmp_path):
    _write_tiny_korsts(tmp_path, "korsts-dev")
    # a file that is not the whole published set is refused under the set's name ...
    with pytest.raises(ValueError, match="read 7 rows .* expects 1500. The published protocol "
                                         "scores the whole set"):
        run_tasks(hashed_encoder(), ["korsts-dev"], data_dir=tmp_path)
    # ... and scored with a limit, on purpose, with a warning
    with pytest.warns(DatasetCountWarning):
        results = run_tasks(hashed_encoder(), ["korsts-dev"], data_dir=tmp_path,
                            plot_dir=tmp_path / "plots", limit=6)
    assert list(results) == ["korsts-dev"] and results["korsts-dev"]["n"] == 6
    assert (tmp_path / "plots" / "korsts-dev.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unknown task"):
        run_tasks(hashed_encoder(), ["korsts-valid"], data_dir=tmp_path)
    for bad in (0, -5, 2.5, True):                       # a negative limit sliced pairs off the end
        with pytest.raises(ValueError, match="limit must be a positive number"):
            run_tasks(hashed_encoder(), ["korsts-dev"], data_dir=tmp_path, limit=bad)


def test_identical_sentence_pairs_tie_whatever_the_batch_size():
    """Pairs of identical sentences have cosine 1 up to float64 noise (1 - 4e-16 ...): ranked as
    ties, cosine and euclidean Spearman agree exactly and do not move with the batch size."""
    base = [STSExample(f"s{i}", f"t{i}", float(i % 6), None) for i in range(40)]
    same = [STSExample(f"u{i}", f"u{i}", 5.0 - 0.1 * i, None) for i in range(8)]  # gold differs
    examples = base + same
    encode = hashed_encoder(384)
    rng = np.random.default_rng(0)
    results = []
    for batch_size in (1, 3, 64):
        def noisy(sentences):      # the same vector per sentence, scaled: cosine 1 up to rounding
            return encode(sentences) * rng.uniform(0.5, 2.0, size=(len(sentences), 1)).astype(np.float32)
        results.append(evaluate_sts(noisy, examples, batch_size=batch_size))
    assert len({r["cosine_spearman"] for r in results}) == 1
    from tfkosent.evaluation.sts import pair_similarities, sts_metrics
    emb = encode([e.sentence1 for e in examples]), encode([e.sentence2 for e in examples])
    unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in emb]
    metrics = sts_metrics(pair_similarities(*unit), examples)
    assert metrics["cosine_spearman"] == metrics["euclidean_spearman"]


def test_undefined_correlations_warn_and_show_as_nan():
    examples = [STSExample(f"a{i}", f"b{i}", 2.0, None) for i in range(5)]    # constant gold
    with pytest.warns(RuntimeWarning, match="cosine_pearson, cosine_spearman, .* are NaN"):
        result = evaluate_sts(hashed_encoder(), examples)
    assert math.isnan(result["cosine_spearman"]) and result["n"] == 5
    row = format_markdown_table({"mine": result}).strip().split("\n")[2]
    assert row.startswith("| mine | 5 | nan | nan |")


def test_non_finite_embeddings_name_the_sentence():
    def encode(sentences):
        return np.array([[np.nan, 1.0] if s == "c" else [1.0, 0.0] for s in sentences], np.float32)
    with pytest.raises(ValueError, match="non-finite values .* for sentence 'c'"):
        evaluate_sts(encode, _examples(), batch_size=2)


def test_evaluate_pairs_and_pairs_files(tmp_path):
    from tfkosent.evaluation import evaluate_pairs, load_sts_file

    examples = _examples()
    s1, s2, gold = zip(*[(e.sentence1, e.sentence2, e.score) for e in examples])
    expected = evaluate_sts(hashed_encoder(), examples)
    assert evaluate_pairs(hashed_encoder(), s1, s2, gold) == expected

    class Model:                                  # anything with SentenceEncoder's encode()
        def encode(self, sentences, show_progress_bar=None):
            return hashed_encoder()(sentences)
    assert evaluate_pairs(Model(), s1, s2, [10 * g for g in gold])["cosine_spearman"] == \
        pytest.approx(expected["cosine_spearman"])                   # any score scale
    with_binary = evaluate_pairs(Model(), s1, s2, gold, binary_labels=[int(g >= 3) for g in gold])
    assert {"pearson", "f1"} <= set(with_binary)
    with pytest.raises(ValueError, match="differ in length: 7, 6, 7"):
        evaluate_pairs(Model(), s1, s2[:-1], gold)
    with pytest.raises(ValueError, match=r"sentences2\[1\] must be non-empty text"):
        evaluate_pairs(Model(), s1, ("b", " ") + s2[2:], gold)
    with pytest.raises(ValueError, match="binary_labels must be 7 values of 0 or 1"):
        evaluate_pairs(Model(), s1, s2, gold, binary_labels=[2] * 7)
    with pytest.raises(TypeError, match="SentenceEncoder or a function"):
        evaluate_pairs("model", s1, s2, gold)

    # the file format `tfkosent train` reads as sts: header-named columns, extra columns ignored
    tsv = tmp_path / "mine.tsv"
    tsv.write_text("id\tscore\tsentence1\tsentence2\n" + "".join(
        f"{i}\t{e.score}\t{e.sentence1}\t{e.sentence2}\n" for i, e in enumerate(examples)), encoding="utf-8")
    assert load_sts_file(tsv) == examples
    assert run_tasks(hashed_encoder(), [], pairs_files=[tsv], plot_dir=tmp_path / "plots") == \
        {str(tsv): expected}
    assert (tmp_path / "plots" / "mine.png").is_file()
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("".join(json.dumps({"sentence1": e.sentence1, "sentence2": e.sentence2,
                                         "score": e.score, "binary_label": int(e.score >= 3)}) + "\n"
                             for e in examples), encoding="utf-8")
    assert [e.binary_label for e in load_sts_file(jsonl)] == [int(e.score >= 3) for e in examples]
    from tfkosent.data import DatasetFormatError
    tsv.write_text("sentence1\tsentence2\tscore\n가\t나\t4\n가\t나\thigh\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=re.escape(f"{tsv}:3: non-numeric score 'high'")):
        load_sts_file(tsv)
    with pytest.raises(FileNotFoundError, match="pairs file .* does not exist"):
        load_sts_file(tmp_path / "nope.tsv")
    with pytest.raises(ValueError, match="nothing to evaluate"):
        run_tasks(hashed_encoder(), [])


def test_run_tasks_on_real_data():
    local = find_local_data_dir()
    if local is None or not (local / DATASETS["klue-sts-dev"].path).is_file():
        pytest.skip("no local KLUE-STS dev")
    results = run_tasks(hashed_encoder(16), ["klue-sts-dev"], data_dir=local, batch_size=128)
    metrics = results["klue-sts-dev"]
    assert metrics["n"] == 519 and {"pearson", "f1", "avg"} <= set(metrics)
    assert abs(metrics["cosine_spearman"]) < 20        # random embeddings: no correlation


def test_format_markdown_table():
    korsts = {k: 80.0 + i for i, k in enumerate(METRIC_KEYS)}
    korsts["avg"] = 83.5
    klue = dict(korsts, pearson=85.123, f1=float("nan"))
    table = format_markdown_table({"korsts-test": korsts, "klue-sts-dev": klue})
    lines = table.strip().split("\n")
    assert lines[0] == ("| Task | Cosine Pearson | Cosine Spearman | Euclidean Pearson | "
                        "Euclidean Spearman | Manhattan Pearson | Manhattan Spearman | Dot Pearson | "
                        "Dot Spearman | AVG | Pearson | F1 (cos≥0.6) |")
    assert lines[1] == "|---|" + "---:|" * 11
    assert lines[2] == ("| korsts-test | 80.00 | 81.00 | 82.00 | 83.00 | 84.00 | 85.00 | 86.00 | "
                        "87.00 | 83.50 | - | - |")
    assert lines[3].endswith("| 83.50 | 85.12 | nan |")                # NaN: undefined, not absent
    only_korsts = format_markdown_table({"korsts-test": korsts})
    assert "F1" not in only_korsts and only_korsts.count("\n") == 3
    cross = format_markdown_table({"korsts-test": {"pearson": 1.0, "spearman": 2.0, "n": 5}})
    assert cross.split("\n")[0] == "| Task | Pairs | Pearson | Spearman |"


def test_write_json_is_atomic_and_strict(tmp_path):
    results = {"korsts-dev": {"cosine_pearson": np.float32(81.25), "f1": float("nan"),
                              "n": np.int64(1500), "note": "한국어"}}
    path = write_json(results, tmp_path / "out" / "results.json")
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "korsts-dev": {"cosine_pearson": 81.25, "f1": None, "n": 1500, "note": "한국어"}}
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_plot_scatter_writes_png(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = plot_scatter([0.0, 2.5, 5.0], [0.1, 0.5, 0.9], tmp_path / "s.png", title="KorSTS 테스트")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="differ"):
        plot_scatter([0.0], [0.1, 0.2], tmp_path / "t.png")


def test_fit_f1_threshold_maximizes_training_f1_and_keeps_ties_together():
    from tfkosent.evaluation.sts import f1_binary, fit_f1_threshold

    rng = np.random.default_rng(0)
    binary = rng.integers(0, 2, 400)
    cosines = 0.8 + 0.1 * binary + 0.05 * rng.standard_normal(400)   # all above 0.6
    cut = fit_f1_threshold(cosines, binary)
    best = f1_binary(binary, cosines >= cut)
    for other in np.linspace(cosines.min(), cosines.max(), 97):
        assert f1_binary(binary, cosines >= other) <= best + 1e-12
    assert best > f1_binary(binary, cosines >= 0.6)                # beats the fixed cut here
    # tied cosines are on the same side of the cut
    cut = fit_f1_threshold([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    assert cut in (0.9, 0.5)
    # of cuts with equal F1 (2/3 at 0.9 and at 0.6) the highest is kept, as documented
    assert fit_f1_threshold([0.9, 0.8, 0.7, 0.6], [1, 0, 0, 1]) == 0.9
    with pytest.raises(ValueError, match="no positive"):
        fit_f1_threshold([0.1, 0.2], [0, 0])


def test_f1_fitted_only_with_a_threshold_and_binary_labels():
    from tfkosent.evaluation.sts import sts_metrics

    examples = [STSExample("a", "b", s, int(s >= 3)) for s in (0.0, 1.0, 2.0, 3.5, 4.0, 5.0)]
    cos = np.array([0.70, 0.72, 0.75, 0.80, 0.85, 0.9])
    sims = {k: cos for k in ("cosine", "euclidean", "manhattan", "dot")}
    plain = sts_metrics(sims, examples)
    assert "f1_fitted" not in plain and plain["f1"] == pytest.approx(100 * 2 * 3 / (2 * 3 + 3))
    fitted = sts_metrics(sims, examples, f1_cosine_threshold=0.78)
    assert fitted["f1_fitted"] == pytest.approx(100.0) and fitted["f1"] == plain["f1"]


def test_evaluate_cli_offline_without_data_says_what_to_do(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """No data directory and no network: one error line with the way out, not a traceback."""
    import urllib.error
    import urllib.request

    from tfkosent.cli import main

    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("TFKOSENT_DATA_DIR", raising=False)
    monkeypatch.setenv("TFKOSENT_CACHE", str(tmp_path / "cache"))
    assert main(["evaluate", tiny_model_dir, "--tasks", "korsts-dev", "--limit", "5"]) == 2
    err = capsys.readouterr().err
    assert "\ntfkosent evaluate: error: downloading 'korsts-dev'" in err, err
    assert "offline? pass --data-dir DIR" in err and "Traceback" not in err


def test_evaluate_cli_writes_json_and_plots(tiny_model_dir, tmp_path, capsys):
    """`tfkosent evaluate --json --plot` on a tiny model: the JSON says what was evaluated
    (absolute path, version, time) and the embeddings are the model's unit vectors."""
    import json

    from tfkosent import __version__
    from tfkosent.cli import main
    from tfkosent.training import synthetic

    data = synthetic.write_data_dir(str(tmp_path / "data"))
    out, plots = tmp_path / "r.json", tmp_path / "plots"
    assert main(["evaluate", tiny_model_dir, "--tasks", "korsts-dev", "--data-dir", data, "--limit", "40",
                 "--json", str(out), "--plot", str(plots)]) == 0
    assert "korsts-dev" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["model"] == tiny_model_dir and report["model_path"] == os.path.abspath(tiny_model_dir)
    assert report["tfkosent_version"] == __version__ and report["evaluated_at"].endswith("Z")
    metrics = report["results"]["korsts-dev"]
    assert metrics["n"] == 40
    assert metrics["dot_spearman"] == pytest.approx(metrics["cosine_spearman"], abs=1e-6)
    (png,) = [p for p in os.listdir(plots) if p.endswith(".png")]
    assert open(plots / png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # what the numbers were computed on: the file, its sha256, whether it is the published one
    korsts = report["data"]["korsts-dev"]
    assert korsts["published"] is False and len(korsts["sha256"]) == 64     # synthetic data
    assert os.path.isabs(korsts["path"]) and korsts["path"].endswith("sts-dev.tsv")
    # without --limit a set that is not the published one is refused; --pairs scores a file
    assert main(["evaluate", tiny_model_dir, "--tasks", "korsts-dev", "--data-dir", data]) == 2
    assert "The published protocol scores the whole set" in capsys.readouterr().err
    pairs = tmp_path / "mine.tsv"
    pairs.write_text("sentence1\tsentence2\tscore\n한 남자가 걷는다.\t남자가 걷는다.\t4.5\n"
                     "한 남자가 걷는다.\t고양이가 잔다.\t0.2\n비가 온다.\t비가 내린다.\t4.8\n",
                     encoding="utf-8")
    assert main(["evaluate", tiny_model_dir, "--pairs", str(pairs), "--json", str(out)]) == 0
    assert f"| {pairs} | 3 |" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert list(report["results"]) == [str(pairs)] and report["results"][str(pairs)]["n"] == 3
    assert report["data"][str(pairs)]["path"] == str(pairs)
    with pytest.raises(SystemExit):                       # argparse: usage error, exit 2
        main(["evaluate", tiny_model_dir, "--limit", "-5"])
    assert "--limit: expected a positive integer, got -5" in capsys.readouterr().err


def test_bad_gold_scores_thresholds_and_pairs_files_are_named(tmp_path):
    """A NaN or non-numeric gold score names its index, f1_cosine_threshold must be a cosine,
    a pairs file with too few pairs is named, and a header naming a column twice is refused
    (the last one won silently) when the format reads that column."""
    from tfkosent.data import DatasetFormatError
    from tfkosent.evaluation import evaluate_pairs, load_sts_file, run_tasks

    s1, s2 = ["가", "나", "다"], ["라", "마", "바"]
    cases = [(dict(scores=[1.0, float("nan"), 2.0]), r"scores\[1\] is nan: gold scores must be finite"),
             (dict(scores=[1.0, 2.0, "x"]), r"scores\[2\] must be a number, got 'x'"),
             (dict(scores=[1.0, 2.0, None]), r"scores\[2\] must be a number, got None"),
             (dict(scores=[1, 2, 3], f1_cosine_threshold="x"),
              r"f1_cosine_threshold must be a number in \[-1, 1\] \(a cosine\), got 'x'"),
             (dict(scores=[1, 2, 3], f1_cosine_threshold=5), r"in \[-1, 1\].*got 5")]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            evaluate_pairs(hashed_encoder(), s1, s2, **kwargs)
    header = "sentence1\tsentence2\tscore"
    files = [("one.tsv", f"{header}\n가\t나\t1\n", ":? need at least 2 pairs for a correlation, got 1"),
             ("dup.tsv", f"{header}\tscore\n가\t나\t1\t9\n다\t라\t2\t8\n", ":1: column 'score' appears twice"),
             ("dup.jsonl", '{"sentence1": "가", "sentence2": "나", "score": 1, "score": 9}\n',
              ":1: key 'score' appears twice")]
    for name, text, message in files:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DatasetFormatError, match=re.escape(str(path)) + message):
            run_tasks(hashed_encoder(), [], pairs_files=[path])
    # a name repeated in a column or key the format never reads is no ambiguity: accepted
    unread = [("notes.tsv", f"{header}\tnote\tnote\n가\t나\t1\tx\ty\n다\t라\t2\tx\ty\n"),
              ("notes.jsonl", '{"sentence1": "가", "sentence2": "나", "score": 1, "m": {"a": 1, "a": 2}}\n'
                              '{"sentence1": "다", "sentence2": "라", "score": 2, "x": 1, "x": 2}\n')]
    for name, text in unread:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        assert [(e.sentence1, e.score) for e in load_sts_file(path)] == [("가", 1.0), ("다", 2.0)]
