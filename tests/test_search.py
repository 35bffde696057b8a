"""Semantic search: exact top-k against brute force, ties, errors, `SentenceEncoder.search` and
`tfkosent search` (corpus file lines, saved corpus embeddings, JSON); paraphrase mining and
community detection (`tfkosent communities`)."""

import gzip
import json

import numpy as np
import pytest

from tfkosent.cli import main
from tfkosent.search import (cached_corpus_embeddings, communities_with_centres, community_detection,
                             paraphrase_mining, read_corpus, semantic_search, top_k_similar)


def brute_force(queries, corpus, k, exclude_self=False, cosine=True):
    """Indices of the k best corpus rows per query: sorted by (-score, index), one row at a time."""
    if cosine:
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        corpus = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    scores = queries @ corpus.T
    out = []
    for i, row in enumerate(scores):
        order = sorted((j for j in range(len(corpus)) if not (exclude_self and j == i)),
                       key=lambda j: (-row[j], j))
        out.append(order[:k])
    return np.array(out, dtype=np.int64)


@pytest.fixture()
def vectors():
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(57, 8)).astype(np.float32)
    corpus[[10, 40, 41]] = corpus[3]            # repeated sentences: exact ties
    queries = rng.normal(size=(13, 8)).astype(np.float32)
    queries[2] = corpus[3]
    return queries, corpus


@pytest.mark.parametrize("k", [1, 3, 5, 60])
@pytest.mark.parametrize("chunks", [(1, 1), (4, 7), (5, 3), (1024, 100_000)])
def test_top_k_matches_brute_force_whatever_the_chunks(vectors, k, chunks):
    queries, corpus = vectors
    indices, scores = top_k_similar(queries, corpus, k, query_chunk_size=chunks[0],
                                    corpus_chunk_size=chunks[1])
    np.testing.assert_array_equal(indices, brute_force(queries, corpus, k))
    assert indices.shape == (13, min(k, 57)) and scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 0)
    indices, _ = top_k_similar(corpus, corpus, k, exclude_self=True, query_chunk_size=chunks[0],
                               corpus_chunk_size=chunks[1])
    np.testing.assert_array_equal(indices, brute_force(corpus, corpus, k, exclude_self=True))
    assert not np.any(indices == np.arange(57)[:, None])


def test_ties_come_in_corpus_order(vectors):
    queries, corpus = vectors
    indices, scores = top_k_similar(queries[2], corpus, 4, corpus_chunk_size=5)
    assert indices[0].tolist() == [3, 10, 40, 41]
    np.testing.assert_allclose(scores[0], 1.0, atol=1e-6)


def test_dot_keeps_the_norms_cosine_does_not():
    corpus = np.array([[1.0, 0.0], [10.0, 10.0]], np.float32)
    query = np.array([1.0, 0.0], np.float32)
    assert top_k_similar(query, corpus, 1)[0][0, 0] == 0
    assert top_k_similar(query, corpus, 1, score_function="dot")[0][0, 0] == 1
    hits = semantic_search(query, corpus, top_k=5, score_function="dot")
    assert [[h["corpus_id"] for h in row] for row in hits] == [[1, 0]]
    assert hits[0][0]["score"] == pytest.approx(10.0)


@pytest.mark.parametrize("call, message", [
    (lambda q, c: top_k_similar(q, c[:, :4], 3), "dim 8 but corpus embeddings have dim 4"),
    (lambda q, c: top_k_similar(q, c, 0), "k must be a positive int, got 0"),
    (lambda q, c: top_k_similar(q, c, 2, score_function="l2"), "score_function must be one of"),
    (lambda q, c: top_k_similar(q, c, 2, exclude_self=True), "13 queries and 57 corpus rows"),
    (lambda q, c: top_k_similar(q, np.where(np.arange(57)[:, None] == 9, np.nan, c), 2),
     r"corpus embeddings\[9\] has a NaN"),
    (lambda q, c: top_k_similar(q[None], c, 2), "must be a \\[n, dim\\] array"),
    (lambda q, c: semantic_search(q, c, top_k=2, corpus_chunk_size=0), "corpus_chunk_size"),
    (lambda q, c: semantic_search(q, c, top_k=0), "^top_k must be a positive int, got 0"),
    (lambda q, c: paraphrase_mining(c, top_k=-1), "^top_k must be a positive int, got -1"),
    (lambda q, c: semantic_search([], c), r"^query embeddings: none given \(an empty list\)"),
])
def test_bad_arguments_are_named(vectors, call, message):
    with pytest.raises(ValueError, match=message):
        call(*vectors)


def test_embeddings_that_are_not_numbers_or_overflow_float32_are_named(vectors):
    """Strings, dicts and ragged lists were NumPy's errors ("could not convert string to float",
    "inhomogeneous shape") naming no argument; a float64 beyond float32 was "NaN or infinite";
    paraphrase_mining's chunk_size=0 was "query_chunk_size ...", and under 2 rows bad
    arguments were accepted."""
    q, c = vectors
    big = np.ones((3, 8))
    big[1, 2] = 1e300
    cases = [(lambda: semantic_search([["a", "b"]], c), TypeError,
              r"^query embeddings must be a float \[n, dim\] array .* of numbers, got str"),
             (lambda: semantic_search(q, {"a": 1}), TypeError, "^corpus embeddings must be .* got dict"),
             (lambda: semantic_search(q, [[1.0, 2.0], [3.0]]), ValueError,
              "^corpus embeddings must be .*; its rows differ in length"),
             (lambda: semantic_search(q, big), ValueError,
              r"^corpus embeddings\[1\] has a value that overflows float32"),
             (lambda: paraphrase_mining(c, chunk_size=0), ValueError,
              "^chunk_size must be a positive int, got 0"),
             (lambda: paraphrase_mining(c[:1], chunk_size=0), ValueError, "^chunk_size"),
             (lambda: paraphrase_mining(c[:1], score_function="l2"), ValueError,
              "^score_function must be one of")]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    # bfloat16 (a mixed_bfloat16 model's output; NumPy sees ml_dtypes' kind 'V') is a float
    import ml_dtypes
    half = semantic_search(q.astype(ml_dtypes.bfloat16), c.astype(ml_dtypes.bfloat16), top_k=3)
    exact = semantic_search(q.astype(ml_dtypes.bfloat16).astype(np.float32),
                            c.astype(ml_dtypes.bfloat16).astype(np.float32), top_k=3)
    assert half == exact


def test_sentence_encoder_search(tiny_model_dir):
    from tfkosent import SentenceEncoder
    from tfkosent.testing import korean_sentences

    model = SentenceEncoder.load(tiny_model_dir)
    corpus = korean_sentences(40, seed=3)
    queries = [corpus[7], "전혀 다른 문장 하나"]
    hits = model.search(queries, corpus, top_k=3)
    similarity = model.similarity(queries, corpus)
    for row, sims in zip(hits, similarity):
        ids = [h["corpus_id"] for h in row]
        np.testing.assert_allclose([h["score"] for h in row], sims[ids], atol=1e-5)
        np.testing.assert_allclose([h["score"] for h in row], np.sort(sims)[::-1][:3], atol=1e-5)
    assert hits[0][0]["corpus_id"] == corpus.index(corpus[7])
    embeddings = model.encode(corpus)
    assert model.search(queries, top_k=3, corpus_embeddings=embeddings) == hits
    assert model.search(queries[0], corpus, top_k=100)[0][0]["corpus_id"] == hits[0][0]["corpus_id"]
    with pytest.raises(ValueError, match="40 sentences but corpus_embeddings has 39 rows"):
        model.search(queries, corpus, corpus_embeddings=embeddings[:39])
    with pytest.raises(ValueError, match=r"must be \[n, 32\]"):
        model.search(queries, corpus_embeddings=embeddings[:, :5])
    import ml_dtypes   # bfloat16 embeddings (a mixed_bfloat16 model's) are floats here too
    half = embeddings.astype(ml_dtypes.bfloat16)
    assert model.search(queries, top_k=3, corpus_embeddings=half) == \
        model.search(queries, top_k=3, corpus_embeddings=half.astype(np.float32))
    with pytest.raises(ValueError, match="needs corpus"):
        model.search(queries)
    with pytest.raises(TypeError, match=r"corpus\[1\] must be a str"):
        model.search(queries, ["ok", None])


def test_cli_search(tiny_model_dir, tmp_path, capsys):
    from tfkosent.testing import korean_sentences

    sentences = korean_sentences(30, seed=5)
    corpus = tmp_path / "corpus.txt.gz"
    # line 1 blank, then the sentences, a whitespace-only line after the fifth
    lines = [""] + sentences[:5] + ["   "] + sentences[5:]
    with gzip.open(corpus, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    assert read_corpus(str(corpus)) == (sentences, [2, 3, 4, 5, 6] + list(range(8, 33)))

    cache = tmp_path / "corpus.npy"
    args = ["search", sentences[6], "전혀 다른 문장", "--corpus", str(corpus), "--model", tiny_model_dir,
            "--top-k", "2", "--corpus-embeddings", str(cache)]
    assert main(args + ["--json"]) == 0
    out, err = capsys.readouterr()
    assert f"wrote 30 corpus embeddings to {cache}" in err
    result = json.loads(out)
    assert [r["query"] for r in result] == [sentences[6], "전혀 다른 문장"]
    first = result[0]["hits"][0]
    assert first == {"corpus_id": 6, "line": 9, "score": pytest.approx(1.0, abs=1e-5),
                     "sentence": sentences[6]}
    assert all(len(r["hits"]) == 2 for r in result)

    assert main(args) == 0                                # plain text, embeddings read back
    out, err = capsys.readouterr()
    assert f"read 30 corpus embeddings from {cache}" in err
    assert f"{corpus}:9  {sentences[6]}" in out.splitlines()[1]

    with gzip.open(corpus, "at", encoding="utf-8") as f:   # a changed corpus is encoded again
        f.write("새로 추가된 문장\n")
    assert main(args) == 0
    assert (f"wrote 31 corpus embeddings to {cache} (replaced: {cache}.json did not match this corpus "
            f"and model)") in capsys.readouterr().err
    assert np.load(cache).shape == (31, 32)


def test_corpus_embeddings_never_overwrite_a_file_they_did_not_write(tiny_model_dir, tmp_path, capsys):
    from tfkosent.sentence_encoder import SentenceEncoder

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("가나다\n라마바\n", encoding="utf-8")
    mine = tmp_path / "mine.npy"
    np.save(mine, np.arange(6.0))
    args = ["search", "가나다", "--corpus", str(corpus), "--model", tiny_model_dir,
            "--corpus-embeddings", str(mine)]
    assert main(args) == 2
    assert f"{mine} exists but {mine}.json does not" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(mine), np.arange(6.0))

    # a run killed between the two writes leaves {"status": "writing"}: encoded again, replaced
    model = SentenceEncoder.load(tiny_model_dir)
    cache = tmp_path / "cache.npy"
    np.save(cache, np.zeros((2, 32), np.float32))
    (tmp_path / "cache.npy.json").write_text('{"status": "writing"}')
    embeddings, reused = cached_corpus_embeddings(model, ["가나다", "라마바"], str(cache))
    assert not reused and np.abs(np.load(cache) - embeddings).max() == 0 and np.abs(embeddings).max() > 0
    assert cached_corpus_embeddings(model, ["가나다", "라마바"], str(cache))[1]


def test_an_unreadable_corpus_embeddings_cache_is_encoded_again(tiny_model_dir, tmp_path, capsys):
    """A corrupt PATH.json or a truncated PATH (.npy) is stale, like one that does not match:
    encoded again and rewritten, and the message names the file that could not be read."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("가나다\n라마바\n사아자\n", encoding="utf-8")
    cache = tmp_path / "ce.npy"
    args = ["search", "가나다", "--corpus", str(corpus), "--model", tiny_model_dir,
            "--corpus-embeddings", str(cache)]
    assert main(args) == 0
    assert f"wrote 3 corpus embeddings to {cache}\n" in capsys.readouterr().err
    good_npy, good_json = cache.read_bytes(), (tmp_path / "ce.npy.json").read_bytes()

    for name, content, unreadable in [
            ("ce.npy.json", b"not json\n", f"{cache}.json was unreadable: Expecting value"),
            ("ce.npy.json", b"\xff\xfe{", f"{cache}.json was unreadable: "),
            ("ce.npy", good_npy[:100], f"{cache} was unreadable: "),       # truncated in its header
            ("ce.npy", good_npy[:200], f"{cache} was unreadable: "),       # ... and in its data
            ("ce.npy", b"", f"{cache} was unreadable: ")]:
        cache.write_bytes(good_npy)
        (tmp_path / "ce.npy.json").write_bytes(good_json)
        (tmp_path / name).write_bytes(content)
        assert main(args) == 0, capsys.readouterr().err
        err = capsys.readouterr().err
        assert f"wrote 3 corpus embeddings to {cache} (replaced: {unreadable}" in err, (name, content, err)
        assert cache.read_bytes() == good_npy and (tmp_path / "ce.npy.json").read_bytes() == good_json
        assert main(args) == 0                                # rewritten: read back next time
        assert f"read 3 corpus embeddings from {cache}\n" in capsys.readouterr().err


@pytest.mark.parametrize("content, queries, extra, message", [
    (b"\xed\x95\x9c\xea\xb8\x80\n\xff\xfe bad\n", ["질문"], [], "corpus.txt:2: not valid UTF-8"),
    (b"\n  \n", ["질문"], [], "the corpus has no sentences"),
    ("문장\n".encode(), ["질문"], ["--top-k", "0"], "--top-k must be a positive int"),
    ("문장\n".encode(), ["질문", "  "], [], "query 2 is blank"),
])
def test_cli_search_errors_name_the_input(tiny_model_dir, tmp_path, capsys, content, queries, extra,
                                          message):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    assert main(["search"] + queries + ["--corpus", str(corpus), "--model", tiny_model_dir] + extra) == 2
    assert message in capsys.readouterr().err


def test_cli_search_warnings_name_the_corpus_line_and_the_query(tiny_model_dir, tmp_path, capsys):
    """Truncation warnings point at FILE:LINE (blank lines counted) and at the query's number,
    not at an index into the list the CLI built."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("짧은 문장\n\n" + "아주 긴 문장 " * 200 + "\n다른 문장\n", encoding="utf-8")
    assert main(["search", "질문", "긴 질문 " * 200, "--corpus", str(corpus), "--model", tiny_model_dir]) == 0
    err = capsys.readouterr().err
    assert f"(first: {corpus}:3," in err, err
    assert "(first: query 2," in err, err
    assert "sentences[" not in err, err


def test_paraphrase_mining_matches_all_pairs(vectors):
    from tfkosent.search import paraphrase_mining

    _, corpus = vectors
    unit = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    scores = unit @ unit.T
    mined = paraphrase_mining(corpus, top_k=56, chunk_size=5)
    assert len(mined) == 57 * 56 // 2                   # every pair, once
    assert {(i, j) for _, i, j in mined} == {(i, j) for i in range(57) for j in range(i + 1, 57)}
    assert [(i, j) for _, i, j in mined[:6]] == [(3, 10), (3, 40), (3, 41), (10, 40), (10, 41), (40, 41)]
    mined_scores = np.array([s for s, _, _ in mined])
    assert np.all(np.diff(mined_scores) <= 0)
    np.testing.assert_allclose(mined_scores, [scores[i, j] for _, i, j in mined], atol=1e-5)
    # top_k 2: only the pairs in which one side ranks the other in its best 2; max_pairs caps
    candidates = {(min(i, j), max(i, j)) for i in range(57)
                  for j in brute_force(corpus, corpus, 2, exclude_self=True)[i]}
    assert (40, 41) not in candidates                   # both rank 3 and 10 first (ties by index)
    assert {(i, j) for _, i, j in paraphrase_mining(corpus, top_k=2)} == candidates
    few = paraphrase_mining(corpus, top_k=2, max_pairs=10, chunk_size=5)
    assert few == [t for t in mined if (t[1], t[2]) in candidates][:10]
    assert paraphrase_mining(corpus[:1]) == []
    with pytest.raises(ValueError, match="max_pairs must be a positive int"):
        paraphrase_mining(corpus, max_pairs=0)


def test_sentence_encoder_paraphrase_mining(tiny_model_dir):
    from tfkosent import SentenceEncoder
    from tfkosent.testing import korean_sentences

    model = SentenceEncoder.load(tiny_model_dir)
    sentences = korean_sentences(20, seed=4)
    sentences.append(sentences[4])                      # an exact duplicate: the best pair
    pairs = model.paraphrase_mining(sentences, top_k=3, max_pairs=5)
    assert pairs[0][1:] == (4, 20) and pairs[0][0] == pytest.approx(1.0, abs=1e-5)
    similarity = model.similarity(sentences)
    for score, i, j in pairs:
        assert i < j and score == pytest.approx(similarity[i, j], abs=1e-5)
    assert [p[0] for p in pairs] == sorted((p[0] for p in pairs), reverse=True)


def _at_angles(degrees):
    """Unit vectors in a plane, one per angle: cosines are the cosines of the differences."""
    radians = np.deg2rad(np.asarray(degrees, float))
    return np.stack([np.cos(radians), np.sin(radians), np.zeros_like(radians)], axis=1)


def test_communities_are_disjoint_largest_first_centre_first():
    e1, e2, e3 = np.eye(3)
    rows = np.stack([e1, e2, e1, e2 + 0.2 * e3, e1, e2 - 0.2 * e3, e1, e3, e1])
    # rows 0, 2, 4, 6, 8 are one vector; 1, 3, 5 lie within cosine 0.92 of each other; 7 alone
    assert community_detection(rows, threshold=0.9, min_community_size=3) == [[0, 2, 4, 6, 8], [1, 3, 5]]
    assert community_detection(rows, threshold=0.9, min_community_size=4) == [[0, 2, 4, 6, 8]]
    assert community_detection(rows, threshold=0.9, min_community_size=1) == [
        [0, 2, 4, 6, 8], [1, 3, 5], [7]]
    assert community_detection(rows, threshold=0.9, min_community_size=6) == []

    # 7 rows 10 degrees apart, threshold cos 25 degrees: rows 2, 3 and 4 each hold 5 rows. Row
    # 2's community comes first (ties: the centre found first) and takes rows 0-4: its centre,
    # then by cosine (rows 1 and 3 tie: lower first). Row 3's keeps only row 5 (dropped); row
    # 4's keeps 5 and 6 without its centre, which row 2's took.
    chain = _at_angles([0, 10, 20, 30, 40, 50, 60])
    threshold = float(np.cos(np.deg2rad(25)))
    expected = [[2, 1, 3, 0, 4], [5, 6]]
    for batch_size in (1, 3, 1024):
        assert community_detection(chain, threshold, min_community_size=2, batch_size=batch_size) == expected
    assert community_detection(chain, threshold, min_community_size=3) == [[2, 1, 3, 0, 4]]
    assert communities_with_centres(chain, threshold, min_community_size=2) == [
        (2, [2, 1, 3, 0, 4]), (4, [5, 6])]                # the second's centre is in the first
    assert community_detection(chain * 7.5, threshold, min_community_size=2) == expected  # cosine
    # a threshold of 1: identical rows, whose float32 cosines round under 1 (checked), all
    # grouped whatever the batch size
    rows = np.random.default_rng(1).normal(size=(100, 384)).astype(np.float32)
    twice = np.concatenate([rows, rows])
    unit = twice / np.linalg.norm(twice, axis=1, keepdims=True)
    assert (np.sum(unit[:100] * unit[100:], axis=1) < 1).any()
    for batch_size in (1, 7, 1024):
        assert community_detection(twice, 1.0, min_community_size=2, batch_size=batch_size) == [
            [i, i + 100] for i in range(100)]
    # min_community_size is capped at the number of rows, as in sentence-transformers
    assert community_detection(chain[:3], 0.5) == [[0, 1, 2]]
    assert community_detection(np.zeros((0, 3)), 0.5, min_community_size=1) == []
    rows = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    assert community_detection(rows, 1.0, min_community_size=1) == [[i] for i in range(50)]
    assert community_detection(np.zeros((2, 3)), 0.5, min_community_size=1) == [[0], [1]]
    # exact ties among many members come by row: rows 0-39 and 42-81 are one vector, 1 and 2
    # degrees from rows 41 and 40
    many = np.concatenate([np.tile(_at_angles([0]), (40, 1)), _at_angles([2, 1]),
                           np.tile(_at_angles([0]), (40, 1))])
    assert community_detection(many, 0.99, min_community_size=2) == [
        list(range(40)) + list(range(42, 82)) + [41, 40]]


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 1.5}, "threshold must be a number in \\[-1, 1\\]"),
    ({"threshold": "0.5"}, "threshold must be a number"),
    ({"threshold": True}, "threshold must be a number"),
    ({"min_community_size": 0}, "min_community_size must be a positive int"),
    ({"batch_size": 2.0}, "batch_size must be a positive int"),
])
def test_community_detection_names_a_bad_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        community_detection(_at_angles([0, 10]), **kwargs)
    rows = _at_angles([0, 10, 20])
    rows[1, 0] = np.nan
    with pytest.raises(ValueError, match="embeddings\\[1\\] has a NaN"):
        community_detection(rows)


def test_sentence_encoder_and_cli_communities_group_duplicates(tiny_model_dir, tmp_path, capsys):
    from tfkosent import SentenceEncoder
    from tfkosent.testing import korean_sentences

    sentences = korean_sentences(12, seed=6)
    sentences += [sentences[2], sentences[7], sentences[2]]   # rows 12-14: duplicates
    model = SentenceEncoder.load(tiny_model_dir)
    assert model.community_detection(sentences, threshold=0.99999, min_community_size=2) == [
        [2, 12, 14], [7, 13]]
    with pytest.raises(ValueError, match="threshold must be"):
        model.community_detection(sentences, threshold=2)

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(sentences[:5] + [""] + sentences[5:]) + "\n", encoding="utf-8")
    args = ["communities", "--corpus", str(corpus), "--model", tiny_model_dir, "--threshold",
            "0.99999", "--min-size", "2"]
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [[m["line"] for m in c["members"]] for c in result] == [[3, 14, 16], [9, 15]]  # line 6: blank
    assert result[0]["centre"] == {"corpus_id": 2, "line": 3, "sentence": sentences[2], "community": 1}
    assert result[0]["members"][0] == {"corpus_id": 2, "line": 3, "score": pytest.approx(1.0, abs=1e-5),
                            "sentence": sentences[2]}
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("2 communities of >= 2 sentences within cosine 0.99999 of their centre, "
                      "holding 5 of 15 sentences")
    assert out[1] == "1. 3 sentences" and out[2].endswith(f"{corpus}:3  {sentences[2]}")
    assert main(args[:-4] + ["--threshold", "1.5"]) == 2
    assert "--threshold must be a number in [-1, 1]" in capsys.readouterr().err


def test_cli_communities_score_members_against_their_centre(monkeypatch, capsys):
    """A community whose centre an earlier one took: members scored against that centre,
    which is named."""
    from tfkosent import search

    chain = _at_angles([0, 10, 20, 30, 40, 50, 60])
    sentences = [f"문장 {i}" for i in range(7)]
    monkeypatch.setattr(search, "_cli_corpus",
                        lambda args: (None, sentences, list(range(1, 8)), chain.astype(np.float32)))
    args = ["communities", "--corpus", "c.txt", "--threshold", str(np.cos(np.deg2rad(25))),
            "--min-size", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("2 communities of >= 2 sentences within cosine 0.906")
    assert out[7] == "2. 2 sentences (its centre c.txt:5 is in community 1)"
    cos10, cos20 = np.cos(np.deg2rad([10, 20]))
    assert out[8:] == [f"  {cos10:.4f}  c.txt:6  문장 5", f"  {cos20:.4f}  c.txt:7  문장 6"]
    assert main(args + ["--json"]) == 0
    second = json.loads(capsys.readouterr().out)[1]
    assert second["centre"] == {"corpus_id": 4, "line": 5, "sentence": "문장 4", "community": 1}
    assert [m["score"] for m in second["members"]] == pytest.approx([cos10, cos20], abs=1e-5)


def test_demo_prints_the_matrix_and_the_search(tiny_model_dir, capsys):
    from tfkosent import demo

    assert demo.main(["--model", tiny_model_dir, "--skip-eval"]) == 0
    out = capsys.readouterr().out
    assert "queries (rows) x corpus (columns)" in out and "semantic search (model.search), top 2:" in out
    for query in demo.QUERIES:
        line = out.split(query + "\n    -> ", 1)[1].splitlines()[0]
        assert line.count(" (0.") + line.count(" (-0.") + line.count(" (1.") == 2   # two scored hits
