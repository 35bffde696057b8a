"""Throughput of the Beam embed-corpus job vs plain `SentenceEncoder.encode`.

    python benchmarks/beam_throughput.py --model EXPORT_DIR [--limit 20000]
        [--data-dir ../shared/data] [--workers 2] [--batch-size 64]

Both embed the same sentences: the first LIMIT non-empty lines of
DATA_DIR/raw/nsmc_reviews.txt.gz (written to a temporary corpus.txt for Beam).

  encode  SentenceEncoder.load(MODEL).encode(sentences) in this process;
          reported without and with the model load.
  beam    tfkosent.beam.embed_corpus.run on the DirectRunner with WORKERS
          worker processes (multi_processing): end to end, so worker start-up
          (each imports TensorFlow and loads the model), reading, the shuffle
          and writing TFRecord shards are all included.

The ratio is beam / encode-with-load sentences/s. On one machine the Beam
DirectRunner cannot beat in-process encode by much: its value is that the
same pipeline runs on Dataflow/Flink/Spark workers. The embeddings of both
are compared (max abs difference) as a sanity check.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(REPO), "shared", "data")
CORPUS = os.path.join("raw", "nsmc_reviews.txt.gz")


def load_sentences(data_dir: str, limit: int):
    """The first `limit` non-empty (not whitespace-only), valid UTF-8 lines."""
    path = os.path.join(data_dir, CORPUS)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found (pass --data-dir)")
    out = []
    with gzip.open(path, "rb") as f:
        for raw in f:
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                continue
            if line.strip():
                out.append(line)
                if len(out) == limit:
                    break
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="export directory written by `tfkosent export`")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    p.add_argument("--limit", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-batch-size", type=int, default=None, help="Beam's max batch (default 8 x batch size)")
    p.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes")
    p.add_argument("--running-mode", default="multi_processing",
                   choices=("multi_processing", "multi_threading", "in_memory"))
    p.add_argument("--tf-threads", type=int, default=None, help="TF intra-op threads per Beam worker")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--keep", default=None, help="keep the corpus and Beam output in this directory")
    args = p.parse_args(argv)

    sentences = load_sentences(args.data_dir, args.limit)
    n = len(sentences)
    print(f"{n} sentences from {os.path.join(args.data_dir, CORPUS)} "
          f"(avg {sum(map(len, sentences)) / max(n, 1):.1f} chars); model {args.model}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; batch size {args.batch_size}; "
          f"beam: DirectRunner {args.running_mode}, {args.workers} workers")

    import numpy as np
    from tfkosent.sentence_encoder import SentenceEncoder

    t0 = time.perf_counter()
    model = SentenceEncoder.load(args.model)
    t1 = time.perf_counter()
    reference = model.encode(sentences, batch_size=args.batch_size, show_progress_bar=False)
    t2 = time.perf_counter()
    load_s, encode_s = t1 - t0, t2 - t1

    from tfkosent.beam import read_embeddings
    from tfkosent.beam.embed_corpus import run

    work = args.keep or tempfile.mkdtemp(prefix="beam_throughput_")
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(sentences) + "\n")
    out = os.path.join(work, "out")
    options = ["--direct_num_workers", str(args.workers), "--direct_running_mode", args.running_mode,
               "--default_sdk_harness_log_level=ERROR"]
    try:
        t3 = time.perf_counter()
        result = run(corpus, out, args.model, batch_size=args.batch_size,
                     max_batch_size=args.max_batch_size, pipeline_options=options, overwrite=True,
                     verify=False, intra_op_threads=args.tf_threads)
        beam_s = time.perf_counter() - t3
        ids, emb = read_embeddings(out)
        rows = np.array([int(i.rsplit(":", 1)[1]) - 1 for i in ids])
        ok = len(ids) == n and len(set(ids)) == n
        diff = float(np.max(np.abs(emb - reference[rows]))) if len(ids) else float("nan")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    enc_rate = n / encode_s
    enc_rate_load = n / (load_s + encode_s)
    beam_rate = n / beam_s
    print()
    print(f"{'':34s} {'seconds':>9s} {'sentences/s':>12s}")
    print(f"{'SentenceEncoder.encode':34s} {encode_s:9.2f} {enc_rate:12.1f}")
    print(f"{'SentenceEncoder.load + encode':34s} {load_s + encode_s:9.2f} {enc_rate_load:12.1f}")
    print(f"{'Beam embed-corpus (end to end)':34s} {beam_s:9.2f} {beam_rate:12.1f}")
    print(f"ratio beam / (load + encode): {beam_rate / enc_rate_load:.2f}x; "
          f"beam / encode: {beam_rate / enc_rate:.2f}x")
    print(f"beam output: {len(ids)} ids, all distinct: {ok}; max |beam - encode| = {diff:.2e}; "
          f"dead-lettered {result.counts.get('dead_lettered', 0)}")
    if args.json:
        from tfkosent.evaluation.sts import write_json  # atomic

        write_json({"sentences": n, "model": args.model, "batch_size": args.batch_size,
                    "workers": args.workers, "running_mode": args.running_mode,
                    "load_s": load_s, "encode_s": encode_s, "beam_s": beam_s,
                    "encode_sentences_per_s": enc_rate, "encode_with_load_sentences_per_s": enc_rate_load,
                    "beam_sentences_per_s": beam_rate, "max_abs_diff": diff, "ids_ok": ok,
                    "counts": result.counts}, args.json)
    return 0 if ok and diff <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
