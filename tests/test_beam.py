"""Bulk embedding with Apache Beam (tfkosent.beam), and the serving signature via saved_model_cli.

The Beam tests are marked `beam` and skip when apache_beam is not installed;
the saved_model_cli test runs without Beam.
"""

import gzip
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tfkosent.testing import korean_sentences

N_SENTENCES = 2000
N_IN_A = 1200
# (1-based line in a.txt, raw bytes, reason): planted among the 1,200 good lines of a.txt.
PLANTED = [(7, b"\xed\xa0\x80\xff \xea\xb0\x80 broken", "invalid_utf8"),
           (500, b"", "empty"),
           (1203, " \t\u3000 ".encode("utf-8"), "whitespace_only")]


@pytest.fixture
def apache_beam():
    return pytest.importorskip("apache_beam")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """corpus/a.txt (LF, 3 bad lines planted) and corpus/sub/b.txt.gz (CRLF, gzip).

    Returns (directory, {id: sentence} of the valid lines, {id: (line, reason)}).
    """
    root = tmp_path_factory.mktemp("beam_corpus")
    sentences = korean_sentences(N_SENTENCES, seed=7)
    # Make every sentence distinct so the id -> sentence mapping is checkable.
    sentences = [f"{s} {i}번" for i, s in enumerate(sentences)]
    expected, planted = {}, {}
    lines_a, good = [], iter(sentences[:N_IN_A])
    bad = {line: (raw, reason) for line, raw, reason in PLANTED}
    number = 0
    while True:
        number += 1
        if number in bad:
            raw, reason = bad[number]
            lines_a.append(raw)
            planted[f"a.txt:{number}"] = (number, reason)
            continue
        s = next(good, None)
        if s is None:
            break
        lines_a.append(s.encode("utf-8"))
        expected[f"a.txt:{number}"] = s
    assert len(planted) == len(PLANTED), "a planted line number is past the end of a.txt"
    (root / "a.txt").write_bytes(b"\n".join(lines_a) + b"\n")
    (root / "sub").mkdir()
    b_sentences = sentences[N_IN_A:]
    with gzip.open(root / "sub" / "b.txt.gz", "wb") as f:
        f.write(b"".join(s.encode("utf-8") + b"\r\n" for s in b_sentences))
    expected.update({f"sub/b.txt.gz:{i}": s for i, s in enumerate(b_sentences, start=1)})
    assert len(expected) == N_SENTENCES
    return str(root), expected, planted


@pytest.mark.beam
def test_direct_runner_two_workers_matches_encode(apache_beam, corpus, tiny_export_dir, tmp_path):
    from tfkosent.beam import read_dead_letters, read_embeddings, read_manifest
    from tfkosent.beam.embed_corpus import run
    from tfkosent.sentence_encoder import SentenceEncoder

    root, expected, planted = corpus
    out = str(tmp_path / "out")
    result = run(root, out, tiny_export_dir, batch_size=32, num_shards=3,
                 pipeline_options=["--direct_num_workers", "2",
                                   "--direct_running_mode", "multi_processing",
                                   "--default_sdk_harness_log_level=ERROR"])
    c = result.counts
    assert c["files"] == 2
    assert c["read"] == N_SENTENCES + len(PLANTED)
    assert c["valid"] == c["embedded"] == c["written_tfrecord"] == N_SENTENCES
    assert c["dead_lettered"] == len(PLANTED)

    ids, emb = read_embeddings(out)
    # Every valid input id exactly once, nothing else.
    assert len(ids) == len(set(ids)) == N_SENTENCES
    assert set(ids) == set(expected)
    assert emb.shape == (N_SENTENCES, 32) and emb.dtype == np.float32
    reference = SentenceEncoder.load(tiny_export_dir).encode([expected[i] for i in ids], batch_size=64)
    np.testing.assert_allclose(emb, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    dead = read_dead_letters(out)
    assert [(d["id"], d["line"], d["reason"]) for d in dead] == \
        [(i, line, reason) for i, (line, reason) in sorted(planted.items(), key=lambda kv: kv[1][0])]
    assert all(d["file"].endswith("a.txt") for d in dead)
    manifest = read_manifest(out)
    assert manifest["hidden_size"] == 32 and len(manifest["files"]["tfrecord"]) == 3
    assert manifest["counts"]["embedded"] == N_SENTENCES


@pytest.mark.beam
def test_cli_run_in_a_fresh_process_writes_nothing_to_stderr(apache_beam, tiny_export_dir, tmp_path):
    """No TensorFlow start-up lines, no Beam 'apitools not found' warning: a clean run's stderr
    is empty (stdout has the counts)."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("가나다\n라마바\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("TFKOSENT_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    proc = subprocess.run([sys.executable, "-m", "tfkosent.cli", "embed-corpus", str(corpus),
                           str(tmp_path / "out"), "--model", tiny_export_dir], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^embedded:\s+2$", proc.stdout, re.M), proc.stdout
    assert proc.stderr == ""


def test_cli_refuses_options_nobody_knows(apache_beam, tiny_export_dir, tmp_path, capsys):
    """A mistyped option (underscores for tfkosent's dashes) is an error, not a silent no-op."""
    from tfkosent import cli

    corpus = tmp_path / "c.txt"
    corpus.write_text("가나다\n", encoding="utf-8")
    argv = ["embed-corpus", str(corpus), str(tmp_path / "out"), "--model", tiny_export_dir,
            "--skip_header_lines", "1", "--direct_num_workers=1"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown option(s) --skip_header_lines:" in err and "direct_num_workers" not in err
    assert not (tmp_path / "out").exists()
    argv = ["embed-corpus", str(corpus), str(tmp_path / "out"), "--model", "default"]
    assert cli.main(argv) == 2
    assert "run `tfkosent export --model default --out DIR`" in capsys.readouterr().err


def test_cli_tsv_column_parquet_and_overwrite(apache_beam, tiny_export_dir, tmp_path, capsys):
    from tfkosent import cli
    from tfkosent.beam import read_dead_letters, read_embeddings
    from tfkosent.sentence_encoder import SentenceEncoder

    rows = ["id\tdocument\tlabel", "1\t정말 재미있는 영화였다\t1", "2\t\t0", "3",
            "4\t   \t1", "5\t배우들의 연기가 좋았다\t1"]
    corpus = tmp_path / "ratings.tsv"
    corpus.write_text("\n".join(rows), encoding="utf-8")  # no final newline: line 6 still counts
    out = tmp_path / "out"
    argv = ["embed-corpus", str(corpus), str(out), "--model", tiny_export_dir, "--column", "1",
            "--batch-size", "2", "--format", "both", "--skip-header-lines", "1"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^read:\s+5$", printed, re.M), printed
    assert re.search(r"^embedded:\s+2$", printed, re.M), printed
    assert re.search(r"^dead-lettered:\s+3\b", printed, re.M), printed

    expected = {"ratings.tsv:2": "정말 재미있는 영화였다", "ratings.tsv:6": "배우들의 연기가 좋았다"}
    reference = SentenceEncoder.load(tiny_export_dir).encode(list(expected.values()))
    for fmt in ("tfrecord", "parquet"):
        ids, emb = read_embeddings(str(out), fmt=fmt)
        assert ids == list(expected)
        np.testing.assert_allclose(emb, reference, atol=1e-5)
    assert [(d["line"], d["reason"]) for d in read_dead_letters(str(out))] == \
        [(3, "empty"), (4, "missing_column"), (5, "whitespace_only")]

    # An earlier run's output is never mixed with a new one.
    assert cli.main(argv) == 2
    assert "already holds embed-corpus output" in capsys.readouterr().err
    assert cli.main(argv + ["--overwrite", "--format", "tfrecord"]) == 0
    capsys.readouterr()
    assert sorted(p for p in os.listdir(out) if p.startswith("embeddings-") and p.endswith(".parquet")) == []


@pytest.mark.beam
def test_line_checks_and_ids(apache_beam):
    from tfkosent.beam.embed_corpus import check_line, pattern_base_dir, relative_name

    assert check_line("한국어 문장".encode()) == ("한국어 문장", None)
    assert check_line(b"\xff")[1][0] == "invalid_utf8"
    assert check_line(b"")[1][0] == "empty"
    assert check_line("\u3000 \t".encode())[1][0] == "whitespace_only"
    assert check_line("a\t문장\tb".encode(), column=1) == ("문장", None)
    assert check_line(b"a", column=1)[1][0] == "missing_column"
    assert pattern_base_dir("/data/corpus/*.txt") == "/data/corpus"
    assert pattern_base_dir("/data/corpus/part-*/x.txt") == "/data/corpus"
    assert pattern_base_dir("/data/corpus/a.txt") == "/data/corpus"
    assert pattern_base_dir("gs://bucket/c/*.txt") == "gs://bucket/c"
    assert relative_name("/data/corpus/sub/a.txt", "/data/corpus") == "sub/a.txt"
    assert relative_name("gs://bucket/c/a.txt", "gs://bucket/c") == "a.txt"


def _small_corpus(path, lines=("가나다", "라마바")):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


@pytest.mark.beam
def test_cli_paths_are_inputs_then_output(apache_beam, tiny_export_dir, tmp_path, capsys):
    """`in3/*` unquoted expands to `in3/a.txt in3/sub out3`: every path but the last is an
    input, the last is OUTPUT; an OUTPUT that is a file or inside an input, a lone path and a
    stray token are refused before anything runs."""
    from tfkosent import cli
    from tfkosent.beam import read_embeddings
    from tfkosent.beam.embed_corpus import run

    in3 = tmp_path / "in3"
    a = _small_corpus(in3 / "a.txt", ["가나다"])
    _small_corpus(in3 / "sub" / "b.txt", ["라마바"])
    argv = ["embed-corpus", a, str(in3 / "sub"), str(tmp_path / "out3"), "--model", tiny_export_dir]
    assert cli.main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    ids, _ = read_embeddings(str(tmp_path / "out3"))
    assert ids == ["a.txt:1", "sub/b.txt:1"]
    assert sorted(os.listdir(in3 / "sub")) == ["b.txt"]

    # in2/*.txt expanded: the last file would be OUTPUT.
    b = _small_corpus(tmp_path / "in2" / "b.txt")
    assert cli.main(["embed-corpus", a, b, "--model", tiny_export_dir]) == 2
    assert "is an existing file, not a directory" in capsys.readouterr().err
    assert (tmp_path / "in2" / "b.txt").read_text(encoding="utf-8") == "가나다\n라마바\n"
    assert cli.main(["embed-corpus", a, "--model", tiny_export_dir]) == 2
    assert "need INPUT [INPUT ...] OUTPUT" in capsys.readouterr().err
    argv = ["embed-corpus", a, str(tmp_path / "out4"), "--model", tiny_export_dir, "--overwrite", "stray",
            "--direct_num_workers", "1", "--num-shards", "1"]
    assert cli.main(argv) == 2
    assert "unexpected argument(s) stray:" in capsys.readouterr().err  # not the options' values
    assert not (tmp_path / "out4").exists()
    for inputs, output in ((str(in3), in3 / "out"), (str(in3 / "**" / "*.txt"), in3 / "sub" / "out")):
        with pytest.raises(ValueError, match="is inside the input"):
            run(inputs, str(output), tiny_export_dir)
        assert not output.exists()


@pytest.mark.beam
def test_cli_options_may_stand_before_the_paths(apache_beam, tiny_export_dir, tmp_path, capsys):
    """A Beam option with a value, and tfkosent's own, before INPUT OUTPUT: each keeps its
    value (argparse had taken Beam's "1" for the first input); a bare token apart from the
    paths is still refused, never taken for OUTPUT."""
    from tfkosent import cli
    from tfkosent.beam import read_embeddings
    from tfkosent.beam.embed_corpus import paths_first

    corpus = _small_corpus(tmp_path / "in" / "c.txt")
    out = tmp_path / "out"
    argv = ["embed-corpus", "--direct_num_workers", "1", "--save_main_session", "--model", tiny_export_dir,
            "--num-shards=1", corpus, str(out), "--batch-size", "2"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert read_embeddings(str(out))[0] == ["c.txt:1", "c.txt:2"]
    assert len([n for n in os.listdir(out) if n.endswith(".tfrecord")]) == 1  # --num-shards=1 kept

    argv = ["embed-corpus", "--overwrite", corpus, str(tmp_path / "out2"), "--model", tiny_export_dir,
            "stray", "--direct_num_workers", "1"]
    assert cli.main(argv) == 2
    assert "unexpected argument(s) stray:" in capsys.readouterr().err
    assert not (tmp_path / "stray").exists() and not (tmp_path / "out2").exists()

    takes = {"--model": True, "--overwrite": False}
    assert paths_first(["--x", "1", "--overwrite", "a", "b", "--model", "m"], takes) == \
        ["a", "b", "--x", "1", "--overwrite", "--model", "m"]
    assert paths_first(["--flag", "--model", "m", "a", "b"], takes) == ["a", "b", "--flag", "--model", "m"]
    with pytest.raises(ValueError, match="unexpected argument"):
        paths_first(["a", "b", "--overwrite", "c"], takes)
    # after "--" every token is a path, even one that looks like an option
    assert paths_first(["--model", "m", "--", "-a", "b"], takes) == ["--model", "m", "--", "-a", "b"]
    with pytest.raises(ValueError, match="unexpected argument"):
        paths_first(["x", "--model", "m", "--", "a", "b"], takes)
    # an unambiguous prefix of a switch is that switch (argparse accepts it); a negative number
    # is a value, not an option
    assert paths_first(["--overw", "a", "b", "--x", "-1"], takes) == ["a", "b", "--overw", "--x", "-1"]
    assert cli.main(["embed-corpus", "--model", tiny_export_dir, "--", corpus, str(tmp_path / "out3")]) == 0, \
        capsys.readouterr().err
    assert read_embeddings(str(tmp_path / "out3"))[0] == ["c.txt:1", "c.txt:2"]


@pytest.mark.beam
def test_bad_argument_or_failed_run_keeps_the_earlier_output(apache_beam, tiny_export_dir, tmp_path,
                                                             capsys, monkeypatch, caplog):
    from tfkosent import cli
    from tfkosent.beam import embed_corpus, read_embeddings

    corpus = _small_corpus(tmp_path / "c.txt")
    out = tmp_path / "out"
    embed_corpus.run(corpus, str(out), tiny_export_dir)
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    ids = read_embeddings(str(out))[0]

    argv = ["embed-corpus", corpus, str(out), "--model", tiny_export_dir, "--overwrite", "--max-batch-size", "8"]
    assert cli.main(argv) == 2
    assert read_embeddings(str(out))[0] == ids  # the bad value is found before anything is touched
    assert "max_batch_size (--max-batch-size) must be >= batch_size (--batch-size)" in capsys.readouterr().err
    for kwargs, message in (({"num_shards": -1}, r"num_shards \(--num-shards"),
                            ({"skip_header_lines": -1}, r"skip_header_lines \(--skip-header-lines\)"),
                            ({"intra_op_threads": 0}, r"intra_op_threads \(--tf-threads\) must be None or")):
        with pytest.raises(ValueError, match=message):
            embed_corpus.run(corpus, str(out), tiny_export_dir, overwrite=True, **kwargs)
    assert read_embeddings(str(out))[0] == ids

    # Leftovers of a killed run are removed; a run that fails its checks changes nothing.
    (out / ".embed-corpus-staging-killed").mkdir()
    (out / ".embed-corpus-staging-killed" / "embeddings-00000-of-00001.tfrecord").write_bytes(b"x")
    (out / "beam-temp-embeddings-killed").mkdir()
    monkeypatch.setattr(embed_corpus.outputs, "read_ids_from_files", lambda paths, fmt: ["a:1", "a:1"])
    with pytest.raises(RuntimeError, match="duplicate id"):
        embed_corpus.run(corpus, str(out), tiny_export_dir, overwrite=True)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    removed = [r.getMessage() for r in caplog.records if "deleted" in r.getMessage()]
    assert any(".embed-corpus-staging-killed" in m for m in removed), removed
    assert any("beam-temp-embeddings-killed" in m for m in removed), removed


@pytest.mark.beam
def test_publish_and_recover_never_lose_an_output(apache_beam, tmp_path):
    """A kill at any point of moving a new output in leaves OUTPUT as it was (or finished)."""
    from tfkosent.beam.embed_corpus import publish, recover

    def make(directory, tag, shards):
        directory.mkdir(parents=True, exist_ok=True)
        for i in range(shards):
            (directory / f"embeddings-{i:05d}-of-{shards:05d}.tfrecord").write_text(tag)
        (directory / "dead_letter.jsonl").write_text(tag)
        (directory / "embed_corpus.json").write_text(tag)
        return {p.name: tag for p in directory.iterdir()}

    def contents(directory):
        return {p.name: p.read_text() for p in directory.iterdir()}

    out = tmp_path / "out"
    make(out, "old", 1)
    new = make(out / ".embed-corpus-staging-t", "new", 2)
    publish(str(out / ".embed-corpus-staging-t"), str(out), str(out / ".embed-corpus-replaced-t"))
    assert contents(out) == new

    # Killed while moving the old output aside or the new one in: rolled back; killed after
    # the new manifest arrived: finished.
    for case in ("moving_old_aside", "moving_new_in", "finished"):
        out = tmp_path / case
        old = make(out, "old", 1)
        staging, replaced = out / ".embed-corpus-staging-t", out / ".embed-corpus-replaced-t"
        new = make(staging, "new", 2)
        replaced.mkdir()
        (replaced / ".swap-started").write_text("")
        os.rename(out / "embed_corpus.json", replaced / "embed_corpus.json")
        if case != "moving_old_aside":
            for name in ("embeddings-00000-of-00001.tfrecord", "dead_letter.jsonl"):
                os.rename(out / name, replaced / name)
            (replaced / ".old-moved-aside").write_text("")
            os.rename(staging / "embeddings-00001-of-00002.tfrecord", out / "embeddings-00001-of-00002.tfrecord")
        if case == "finished":
            for name in ("embeddings-00000-of-00002.tfrecord", "dead_letter.jsonl", "embed_corpus.json"):
                os.rename(staging / name, out / name)
        assert recover(str(out))
        assert contents(out) == (new if case == "finished" else old), case


@pytest.mark.beam
def test_directory_input_skips_earlier_output_files(apache_beam, tiny_export_dir, tmp_path, capsys):
    from tfkosent import cli
    from tfkosent.beam import read_embeddings, read_manifest

    corpus = tmp_path / "corpus"
    _small_corpus(corpus / "a.txt")
    for name in ("old_out/embeddings-00000-of-00001.tfrecord", "old_out/embeddings-00000-of-00001.parquet",
                 "old_out/dead_letter.jsonl", "old_out/embed_corpus.json",
                 "old_out/beam-temp-embeddings-1/part.txt", ".embed-corpus-staging-1/part.txt"):
        _small_corpus(corpus / name, ["이전 실행의 출력"])
    out = tmp_path / "out"
    assert cli.main(["embed-corpus", str(corpus), str(out), "--model", tiny_export_dir]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^skipped output files: 6\b", printed, re.M), printed
    assert read_embeddings(str(out))[0] == ["a.txt:1", "a.txt:2"]
    counts = read_manifest(str(out))["counts"]
    assert counts["files"] == 1 and counts["skipped_output_files"] == 6


@pytest.mark.beam
def test_inputs_sharing_a_file_name_get_distinct_ids(apache_beam, tiny_export_dir, tmp_path):
    from tfkosent.beam import read_embeddings, read_manifest
    from tfkosent.beam.embed_corpus import run

    x1 = _small_corpus(tmp_path / "d1" / "x.txt", ["가나다"])
    x2 = _small_corpus(tmp_path / "d2" / "x.txt", ["라마바", "사아자"])
    out = str(tmp_path / "out")
    run([x1, x2], out, tiny_export_dir, verify=False)
    assert read_embeddings(out)[0] == ["d1/x.txt:1", "d2/x.txt:1", "d2/x.txt:2"]
    assert read_manifest(out)["id_base"] == str(tmp_path)

    from tfkosent.beam.embed_corpus import check_unique_ids, common_base, relative_name

    assert common_base(["/data/ab", "/data/ac/x"]) == "/data"   # by segment, not by character
    assert common_base(["/a", "/b"]) == "/"
    assert common_base(["/data/c"]) == "/data/c"
    assert common_base(["gs://bk/c/d1", "gs://bk/c/d2"]) == "gs://bk/c"
    assert common_base(["gs://b1/c", "gs://b2/c"]) == "gs://"
    assert relative_name("gs://b1/c/x.txt", "gs://") == "b1/c/x.txt"
    assert common_base(["/data/c", "gs://bk/c"]) == ""
    with pytest.raises(ValueError, match="duplicate ids, e.g. x.txt:LINE"):
        check_unique_ids(["/data/c/x.txt", "gs://bk/c/x.txt"], "")


@pytest.mark.beam
def test_truncated_lines_are_counted_and_printed(apache_beam, tiny_export_dir, tmp_path, capsys):
    from tfkosent import cli
    from tfkosent.beam import read_manifest

    corpus = _small_corpus(tmp_path / "c.txt", ["짧은 문장", "가나다라 마바사 " * 100])
    out = tmp_path / "out"
    assert cli.main(["embed-corpus", corpus, str(out), "--model", tiny_export_dir]) == 0
    printed = capsys.readouterr().out
    assert "truncated: 1 (longer than 62 tokens: only the first 62 were embedded)" in printed, printed
    manifest = read_manifest(str(out))
    assert manifest["counts"]["truncated"] == 1 and manifest["max_tokens"] == 62


@pytest.mark.beam
def test_handler_cuts_calls_to_the_exports_token_budget(apache_beam, tiny_export_dir,
                                                       tiny_budget_export_dir):
    """An export made with --max-batch-tokens refuses a call over it; the handler measures the
    sentences with preprocess/ and cuts its calls to fit, so embed-corpus's batches of long
    lines are embedded, the same as without a budget."""
    import tensorflow as tf
    from tfkosent.beam.model_handler import SentenceEncoderModelHandler, resolve_serving_dir

    budgeted = tiny_budget_export_dir
    sentences = ["가나다라 마바사 " * 100, "짧은 문장", "라마바 " * 60, "가"] * 3
    serving = tf.saved_model.load(resolve_serving_dir(budgeted)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="request too large"):
        serving(sentences=tf.constant(sentences))  # one call of all: over the budget

    def embed(export):
        handler = SentenceEncoderModelHandler(resolve_serving_dir(export), inference_batch_size=64)
        model = handler.load_model()
        return model, np.stack([r.inference for r in handler.run_inference(sentences, model)])

    model, got = embed(budgeted)
    assert model.budget == 128
    _, expected = embed(tiny_export_dir)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    handler = SentenceEncoderModelHandler(resolve_serving_dir(budgeted), inference_batch_size=3)
    packed = np.array([64, 64, 10, 20, 64, 5])
    assert list(handler._calls([5, 2, 3, 0, 1, 4], packed, 128)) == [[5, 2, 3], [0, 1], [4]]
    assert list(handler._calls([5, 2, 3, 0, 1, 4], packed, None)) == [[5, 2, 3], [0, 1, 4]]
    # without preprocess/ (no lengths), every sentence counts as the export's maximum length
    assert list(handler._calls([5, 2, 3, 0, 1, 4], np.full(6, 64), 128)) == [[5, 2], [3, 0], [1, 4]]


def test_beam_package_is_import_light():
    code = "import sys, tfkosent.beam; print([m for m in ('apache_beam', 'tensorflow') if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


# saved_model_cli is what TF Serving users reach for to check a SavedModel, and
# `run` executes the serving signature the way the server does (TF1 session,
# signature tensors). Its binary does not load the tensorflow_text ops, so the
# plain command fails on SentencepieceOp; running its main() after
# `import tensorflow_text` works (docs/serving.md).
SMCLI_WITH_TF_TEXT = ("import sys, tensorflow_text; "
                      "from tensorflow.python.tools.saved_model_cli import main; "
                      "sys.argv[0] = 'saved_model_cli'; sys.exit(main())")
SMCLI_SENTENCES = ["나는 밥을 먹는다.", "고양이가 공원에서 책을 읽는다", "", "😀 emoji와 漢字 섞인 문장",
                   "한국어 문장 임베딩 " * 40]


def _parse_smcli_output(stdout: str, key: str = "embeddings") -> np.ndarray:
    """The array printed after 'Result for output key KEY:' (numpy's repr)."""
    head = f"Result for output key {key}:"
    assert head in stdout, stdout[-2000:]
    text = stdout.split(head, 1)[1]
    text = text[:text.rindex("]]") + 2]
    rows = re.findall(r"\[([^\[\]]+)\]", text)
    return np.array([[float(v) for v in row.split()] for row in rows], np.float32)


def test_saved_model_cli_runs_serving_signature(tiny_export_dir):
    bin_dir = os.path.dirname(sys.executable)
    if not os.path.exists(os.path.join(bin_dir, "saved_model_cli")):
        pytest.skip("saved_model_cli not installed next to this python")
    serving_dir = os.path.join(tiny_export_dir, "sentence_encoder", "1")
    exprs = "sentences=" + json.dumps(SMCLI_SENTENCES, ensure_ascii=False)
    args = ["run", "--dir", serving_dir, "--tag_set", "serve", "--signature_def", "serving_default",
            "--input_exprs", exprs]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    plain = subprocess.run([os.path.join(bin_dir, "saved_model_cli")] + args, capture_output=True,
                           text=True, timeout=300, env=env)
    if plain.returncode != 0:  # the documented reason, not some other failure
        assert "SentencepieceOp" in plain.stderr, plain.stderr[-3000:]

    proc = subprocess.run([sys.executable, "-c", SMCLI_WITH_TF_TEXT] + args, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    emb = _parse_smcli_output(proc.stdout)
    assert emb.shape == (len(SMCLI_SENTENCES), 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    from tfkosent.sentence_encoder import SentenceEncoder
    reference = SentenceEncoder.load(tiny_export_dir).encode(SMCLI_SENTENCES)
    np.testing.assert_allclose(emb, reference, atol=1e-5)  # printed with 8 significant digits
