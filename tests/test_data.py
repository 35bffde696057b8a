"""Tests of tfkosent.data: registry, data-directory rules, strict parsing, loaders, tf.data.

Real-data tests read the local copies (``$TFKOSENT_DATA_DIR`` or ``<repo>/../shared/data``)
and are skipped where a file is absent.  Nothing here touches the network: `urlopen` is
replaced by a function that fails, or by a fake serving local bytes.
"""

import csv
import hashlib
import http.client
import io
import json
import os
import re
import subprocess
import sys
import urllib.request
import warnings

import numpy as np
import pytest

import tfkosent.data as data
from tfkosent.data import (DATASETS, DatasetCountWarning, DatasetFormatError, DownloadError,
                           ManualDownloadRequired, NLIExample, STSExample)

LOCAL = data.find_local_data_dir()
KORSTS_HEADER = "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tests must not download")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def local_dir():
    if LOCAL is None or not LOCAL.is_dir():
        pytest.skip("no local data directory (set TFKOSENT_DATA_DIR or provide ../shared/data)")
    return LOCAL


def _local_file(local_dir, name):
    path = local_dir / DATASETS[name].path
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / DATASETS[name].path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def _korsts_row(score="3.000", s1="한 남자가 걷는다.", s2="남자가 걷고 있다."):
    return f"main-captions\tMSRvid\t2012test\t0001\t{score}\t{s1}\t{s2}\n"


# --------------------------------------------------------------------------- registry


def test_registry_entries_are_complete():
    assert set(data.list_datasets("sts")) == {"korsts-train", "korsts-dev", "korsts-test",
                                              "klue-sts-train", "klue-sts-dev"}
    assert set(data.list_datasets("nli")) == {"klue-nli-train", "klue-nli-dev",
                                              "xnli-ko-dev", "xnli-ko-test"}
    for name, info in DATASETS.items():
        assert info.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", info.sha256), name
        assert info.rows > 0 and info.license
        assert info.conversion in (None, "manual") or info.conversion in data.datasets._CONVERTERS
        if info.conversion is not None:
            assert info.derivation, f"{name}: derived files must document their derivation"
        if info.conversion != "manual":
            assert info.url.startswith("https://raw.githubusercontent.com/"), name
        if info.url.startswith("https://raw.githubusercontent.com/"):
            # owner/repo/<full 40-hex commit>/path: a branch moves and a short id can become
            # ambiguous, either of which would change what the sha256 is checked against.
            assert re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/",
                            info.url), f"{name}: {info.url} is not pinned to a full commit"


def test_unknown_names_are_rejected_with_the_known_ones():
    with pytest.raises(ValueError, match="korsts-dev"):
        data.load_sts("korsts-valid")
    with pytest.raises(ValueError, match="unknown sts dataset 'klue-nli-dev'"):
        data.load_sts("klue-nli-dev")


# --------------------------------------------------------------------------- data directory


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "cache"))
    assert data.resolve_data_dir() == tmp_path / "cache" / "data"
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path / "env"))
    assert data.resolve_data_dir() == tmp_path / "env"
    assert data.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv(data.ENV_CACHE)
    monkeypatch.delenv(data.ENV_DATA_DIR)
    assert data.cache_dir() == data.resolve_data_dir()
    assert str(data.cache_dir()).endswith(os.path.join(".cache", "tfkosent", "data"))


def test_data_dirs_expand_home_and_variables(monkeypatch, tmp_path):
    """A shell leaves ~ unexpanded in --data-dir=~/d and in environment variables."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WHERE", "w")
    assert data.resolve_data_dir("~/d") == tmp_path / "d"
    monkeypatch.setenv(data.ENV_DATA_DIR, "~/$WHERE")
    assert data.resolve_data_dir() == tmp_path / "w"
    assert data.find_local_data_dir() == tmp_path / "w"
    monkeypatch.delenv(data.ENV_DATA_DIR)
    monkeypatch.setenv(data.ENV_CACHE, "~/cache")
    assert data.cache_dir() == tmp_path / "cache" / "data"


def test_missing_file_in_explicit_dir_says_what_to_place_where(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        data.load_sts("korsts-dev", data_dir=tmp_path)
    assert str(tmp_path / "korsts" / "sts-dev.tsv") in str(e.value)
    assert DATASETS["korsts-dev"].url in str(e.value)
    assert "tfkosent.data.download('korsts-dev'" in str(e.value)
    with pytest.raises(FileNotFoundError) as e:   # not downloadable: no download() hint
        data.load_raw_sentences("nsmc-reviews", limit=1, data_dir=tmp_path)
    assert "download(" not in str(e.value) and DATASETS["nsmc-reviews"].sha256 in str(e.value)


def test_cache_manual_dataset_raises_instructions(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path))
    with pytest.raises(ManualDownloadRequired) as e:
        data.load_raw_sentences("nsmc-reviews", limit=1)
    msg = str(e.value)
    assert str(tmp_path / "data" / "raw" / "nsmc_reviews.txt.gz") in msg
    assert DATASETS["nsmc-reviews"].sha256 in msg


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_verifies_sha256_and_writes_atomically(monkeypatch, tmp_path, local_dir):
    source = _local_file(local_dir, "korsts-dev").read_bytes()
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return _FakeResponse(source)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path))
    examples = data.load_sts("korsts-dev")          # cache dir: downloads on demand
    assert len(examples) == 1500 and urls == [DATASETS["korsts-dev"].url]
    target = tmp_path / "data" / "korsts" / "sts-dev.tsv"
    assert target.read_bytes() == source
    assert data.download("korsts-dev") == target     # present with the right sha: no refetch
    assert len(urls) == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["sts-dev.tsv"]  # no temp files

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _FakeResponse(b"x\n"))
    with pytest.raises(DownloadError, match="does not match"):
        data.download("korsts-test")
    assert not (tmp_path / "data" / "korsts" / "sts-test.tsv").exists()
    target.write_bytes(b"tampered")
    with pytest.raises(DownloadError, match="force=True"):
        data.download("korsts-dev")


def test_a_dropped_connection_is_a_download_error(monkeypatch, tmp_path):
    class Dropped(_FakeResponse):
        def read(self, *args):
            raise http.client.IncompleteRead(b"half", 100)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Dropped(b""))
    with pytest.raises(DownloadError, match=r"downloading 'korsts-dev' from .*IncompleteRead"):
        data.download("korsts-dev", data_dir=tmp_path)
    assert not (tmp_path / "korsts").exists() or not any((tmp_path / "korsts").iterdir())


def test_klue_nli_conversion_reproduces_the_local_file(local_dir):
    """The DACON source is train rows + dev rows as pandas CSV with an index column;
    the converter must give the local TSV byte for byte (hence its sha256)."""
    _local_file(local_dir, "klue-nli-train")
    _local_file(local_dir, "klue-nli-dev")
    train = data.load_nli("klue-nli-train", data_dir=local_dir)
    dev = data.load_nli("klue-nli-dev", data_dir=local_dir)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["index", "premise", "hypothesis", "label"])
    writer.writerows([i, *ex] for i, ex in enumerate(train + dev))
    converted = data.datasets._convert_klue_nli_dacon(buf.getvalue().encode("utf-8"))
    assert hashlib.sha256(converted).hexdigest() == DATASETS["klue-nli-train"].sha256
    small = "index,premise,hypothesis,label\n0,\"전제, 하나\",가설,entailment\n"
    with pytest.raises(DownloadError, match="rows"):
        data.datasets._convert_klue_nli_dacon(small.encode("cp949"))


# --------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", list(DATASETS))
def test_real_dataset_row_counts(local_dir, name):
    _local_file(local_dir, name)
    assert data.count_rows(name, data_dir=local_dir) == DATASETS[name].rows


def test_dataset_stats_and_checksums(local_dir):
    stats = data.dataset_stats(["korsts-train", "klue-sts-dev", "chatbot-qa"], data_dir=local_dir,
                               check_sha256=True)
    for name, entry in stats.items():
        if entry["present"]:
            assert entry["rows"] == entry["expected_rows"] == DATASETS[name].rows
            assert entry["rows_ok"] and entry["sha256_ok"]
    missing = data.dataset_stats(["korsts-dev"], data_dir=local_dir / "nowhere")["korsts-dev"]
    assert missing == {"path": str(local_dir / "nowhere" / "korsts" / "sts-dev.tsv"),
                       "present": False, "rows": None, "expected_rows": 1500, "rows_ok": False}


def test_korsts_train_has_5749_rows_despite_stray_quotes(local_dir):
    path = _local_file(local_dir, "korsts-train")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetCountWarning)
        examples = data.load_sts("korsts-train", data_dir=local_dir)
    assert len(examples) == 5749
    assert all(isinstance(e, STSExample) and 0 <= e.score <= 5 and e.binary_label is None
               for e in examples)
    assert examples[0] == STSExample("비행기가 이륙하고 있다.", "비행기가 이륙하고 있다.", 5.0, None)
    with open(path, encoding="utf-8", newline="") as f:   # why quoting must be off
        assert len(list(csv.reader(f, delimiter="\t"))) - 1 < 5749


def test_klue_sts_binary_labels(local_dir):
    _local_file(local_dir, "klue-sts-dev")
    dev = data.load_sts("klue-sts-dev", data_dir=local_dir)
    assert len(dev) == 519
    assert all(e.binary_label == int(e.score >= 3) for e in dev)
    assert dev[0].score == pytest.approx(4.857142857142857)
    _local_file(local_dir, "klue-sts-train")
    train = data.load_sts("klue-sts-train", data_dir=local_dir)
    assert len(train) == 11668 and all(e.binary_label == int(e.score >= 3) for e in train)


def test_paraphrase_groups_pairs_and_raw(local_dir):
    for name, n_groups in (("parakqc", 836), ("stylekqc", 2400)):
        _local_file(local_dir, name)
        groups = data.load_paraphrase_groups(name, data_dir=local_dir)
        assert len(groups) == n_groups and {len(g) for g in groups} == {10}
    _local_file(local_dir, "sae4k")
    pairs = data.load_pairs("sae4k", data_dir=local_dir)
    assert len(pairs) == 30837 and not any(a.endswith("\r") or b.endswith("\r") for a, b in pairs)
    _local_file(local_dir, "nsmc-reviews")
    assert len(data.load_raw_sentences("nsmc-reviews", limit=5, data_dir=local_dir)) == 5
    _local_file(local_dir, "chatbot-qa")
    qa = data.load_raw_sentences("chatbot-qa", data_dir=local_dir)
    assert len(qa) == 2 * 11823 and qa[:2] == ["12시 땡!", "하루가 또 가네요."]
    _local_file(local_dir, "news-titles")
    titles = data.load_raw_sentences("news-titles", data_dir=local_dir)
    assert len(titles) == 1792           # 1,793 rows, one of them an empty title
    assert titles[0] == "'아스달 연대기' 뇌안탈 후계자 송중기, 이아르크에 숨어들었다 [종합]"


def test_nli_triplets_on_real_data(local_dir):
    _local_file(local_dir, "xnli-ko-dev")
    triplets = data.nli_triplets(data.load_nli("xnli-ko-dev", data_dir=local_dir))
    assert len(triplets) == 830     # 830 premises, one entailment and one contradiction each


# --------------------------------------------------------------------------- malformed files


@pytest.mark.parametrize("bad_row, message", [
    ("main-captions\tMSRvid\t2012test\t0001\t3.0\t한 남자가 걷는다.\n", "expected 7 tab-separated"),
    ("main-captions\tMSRvid\t2012test\t0001\t3.0\t가\t나\t다\n", "expected 7 tab-separated"),
    (_korsts_row(score="high"), "non-numeric 'score'"),
    (_korsts_row(score="5.2"), "outside [0, 5]"),
    (_korsts_row(score="-0.1"), "outside [0, 5]"),
    (_korsts_row(score="nan"), "outside [0, 5]"),
    (_korsts_row(s1=""), "empty 'sentence1'"),
    (_korsts_row(s2="  "), "empty 'sentence2'"),
    ("\n", "expected 7 tab-separated"),
])
def test_malformed_tsv_rows_name_file_and_line(tmp_path, bad_row, message):
    text = KORSTS_HEADER + _korsts_row() + _korsts_row() + bad_row + _korsts_row()
    path = _write(tmp_path, "korsts-train", text)
    with pytest.raises(DatasetFormatError) as e:
        data.load_sts("korsts-train", data_dir=tmp_path)
    assert str(e.value).startswith(f"{path}:4: ")
    assert message in str(e.value)
    assert e.value.path == str(path) and e.value.line == 4


def test_other_malformed_files(tmp_path):
    cases = [
        ("korsts-dev", "genre\tscore\n" + _korsts_row(), 1, "expected header"),
        ("korsts-dev", KORSTS_HEADER.encode() + _korsts_row().encode() + b"\xff\xfe\n", 3,
         "not valid UTF-8"),
        ("klue-nli-train", "premise\thypothesis\tlabel\n전제\t가설\tentailment\n전제\t가설\tmaybe\n",
         3, "'label' 'maybe' is not one of"),
        ("xnli-ko-dev", "sentence1\tsentence2\tgold_label\n\t가설\tneutral\n", 2, "empty 'sentence1'"),
        ("klue-sts-train", 'sentence1,sentence2,label\n"가, 나",다,1.5\n라,마,6\n', 3, "outside [0, 5]"),
        ("klue-sts-train", "sentence1,sentence2,label\n가,나\n", 2, "expected 3 comma-separated"),
        ("klue-sts-train", "sentence1,sentence2,label\n가,나,1\n\n다,라,2\n", 3, "blank line"),
        ("klue-sts-train", b"sentence1,sentence2,label\n\xea\xb0\x80,\xeb\x82\x98,1\n\xff,x,2\n", 3,
         "not valid UTF-8"),
        ("sae4k", "질문\t논항\t0\r\n질문 둘\t0\r\n", 2, "expected 3 tab-separated"),
        ("parakqc", "group\tcol1\tcol2\tsentence\n1\t0\t0\t \n", 2, "empty 'sentence'"),
        ("klue-sts-dev", '[\n  {"sentence1": "가",\n  "sentence2": }\n]', 3, "invalid JSON"),
    ]
    for name, text, line, message in cases:
        path = _write(tmp_path, name, text)
        with pytest.raises(DatasetFormatError) as e:
            data.count_rows(name, data_dir=tmp_path)
        assert str(e.value).startswith(f"{path}:{line}: "), (name, str(e.value))
        assert message in str(e.value), (name, str(e.value))


def test_malformed_json_records_are_located_by_record_number(tmp_path):
    good = {"sentence1": "가", "sentence2": "나", "labels": {"real-label": 3.2, "binary-label": 1}}
    bad = {"sentence1": "가", "sentence2": "나", "labels": {"real-label": 7, "binary-label": 1}}
    path = _write(tmp_path, "klue-sts-dev", json.dumps([good, bad], ensure_ascii=False))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: record 2: 'labels.real-label' 7")):
        data.load_sts("klue-sts-dev", data_dir=tmp_path)
    flipped = {"sentence1": "가", "sentence2": "나", "labels": {"real-label": 2.4, "binary-label": 1}}
    path = _write(tmp_path, "klue-sts-dev", json.dumps([good, flipped], ensure_ascii=False))
    with pytest.raises(DatasetFormatError, match=re.escape(
            f"{path}: record 2: 'labels.binary-label' 1 disagrees with 'labels.real-label' 2.4")):
        data.load_sts("klue-sts-dev", data_dir=tmp_path)
    _write(tmp_path, "klue-nli-dev", json.dumps([{"premise": "가", "hypothesis": "나"}]))
    with pytest.raises(DatasetFormatError, match="record 1: missing field 'gold_label'"):
        data.load_nli("klue-nli-dev", data_dir=tmp_path)


def test_crlf_bom_trailing_blank_lines_and_count_warning(tmp_path):
    text = "\ufeff" + (KORSTS_HEADER + _korsts_row("1.5") + _korsts_row("4")).replace("\n", "\r\n")
    _write(tmp_path, "korsts-dev", text + "\r\n\n")
    with pytest.warns(DatasetCountWarning, match="read 2 rows .* expects 1500"):
        examples = data.load_sts("korsts-dev", data_dir=tmp_path)
    assert examples == [STSExample("한 남자가 걷는다.", "남자가 걷고 있다.", 1.5, None),
                        STSExample("한 남자가 걷는다.", "남자가 걷고 있다.", 4.0, None)]


# --------------------------------------------------------------------------- helpers


def test_nli_triplets_hand_made():
    examples = [
        NLIExample("p1", "e1", "entailment"), NLIExample("p1", "n1", "neutral"),
        NLIExample("p1", "c1", "contradiction"),
        NLIExample("p2", "e2a", "entailment"), NLIExample("p2", "c2", "contradiction"),
        NLIExample("p2", "e2b", "entailment"),
        NLIExample("p3", "e3", "entailment"), NLIExample("p3", "n3", "neutral"),
        NLIExample("p4", "c4a", "contradiction"), NLIExample("p4", "e4", "entailment"),
        NLIExample("p4", "c4b", "contradiction"),
    ]
    assert data.nli_triplets(examples) == [("p1", "e1", "c1"), ("p2", "e2a", "c2"),
                                           ("p2", "e2b", "c2"), ("p4", "e4", "c4a")]


def test_numpy_helpers():
    sts = [STSExample("가", "나", 4.5, 1), STSExample("다", "라", 0.5, None)]
    cols = data.sts_to_numpy(sts)
    assert cols["sentence1"].dtype == object and list(cols["sentence2"]) == ["나", "라"]
    assert cols["score"].dtype == np.float32 and cols["score"].tolist() == [4.5, 0.5]
    assert cols["binary_label"].dtype == np.int32 and cols["binary_label"].tolist() == [1, -1]
    nli = data.nli_to_numpy([NLIExample("p", "h", "contradiction")])
    assert nli["label"].tolist() == [2] and nli["label"].dtype == np.int32
    assert list(data.triplets_to_numpy([("a", "p", "n")])) == ["anchor", "positive", "negative"]
    assert data.pairs_to_numpy([("a", "b")])["text_b"].tolist() == ["b"]
    assert data.groups_to_numpy([["a", "b"], ["c", "d"]]).shape == (2, 2)
    with pytest.raises(ValueError, match="different sizes"):
        data.groups_to_numpy([["a"], ["b", "c"]])


def test_tf_dataset_shapes():
    tf = pytest.importorskip("tensorflow")
    sts = [STSExample(f"문장 {i}", f"다른 문장 {i}", i / 2, i % 2) for i in range(10)]
    ds = data.make_tf_dataset(data.sts_to_numpy(sts), batch_size=4)
    batches = list(ds)
    assert [int(b["score"].shape[0]) for b in batches] == [4, 4, 2]
    first = batches[0]
    assert first["sentence1"].dtype == tf.string and first["score"].dtype == tf.float32
    assert first["binary_label"].dtype == tf.int32
    assert first["sentence1"].numpy()[1].decode("utf-8") == "문장 1"
    ds = data.make_tf_dataset(data.sts_to_numpy(sts), batch_size=4, shuffle=True, seed=0,
                              drop_remainder=True)
    assert ds.element_spec["score"].shape.as_list() == [4]
    shuffled = [x for b in ds for x in b["score"].numpy().tolist()]
    assert len(shuffled) == 8 and len(set(shuffled)) == 8 and set(shuffled) <= {e.score for e in sts}
    groups = data.make_tf_dataset({"group": data.groups_to_numpy([["a", "b", "c"]] * 3)}, batch_size=2)
    assert groups.element_spec["group"].shape.as_list() == [None, 3]
    with pytest.raises(ValueError, match="equally long"):
        data.make_tf_dataset({"a": np.zeros(2), "b": np.zeros(3)}, batch_size=1)


def test_packages_import_without_tensorflow():
    code = ("import sys, tfkosent.data, tfkosent.evaluation; "
            "bad = [m for m in ('tensorflow', 'matplotlib', 'scipy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
