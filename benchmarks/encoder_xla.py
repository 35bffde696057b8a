"""Encoder-only throughput with and without XLA (`jit_compile`), ours against the 3x768 shape.

`throughput.py` times what users call (strings in, tokenization and packing included). This
script isolates the encoder to answer one question: does compiling it with XLA change the speed
ratio between the default model (3 x 384) and the distilkobert_sentence_encoder shape (3 x 768,
random weights, vocabulary 8002) on this CPU?

Both encoders get the same token sequences: the default model's tokens of the 2,758 KorSTS test
sentences ([CLS] ... [SEP]; folded into the 8002-piece vocabulary for the 3x768 shape), sorted
by length, in batches of 64, each padded to a multiple of 8 tokens so XLA compiles a handful of
shapes, not one per batch. Every shape is run once before timing; the time is the best of 3
passes. Each (encoder, XLA) pair runs in its own process.

    python benchmarks/encoder_xla.py [--model DIR] [--data-dir DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZE, PAD_TO = 64, 8


def _worker(args) -> dict:
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    sys.path.insert(0, REPO)
    from tfkosent import SentenceEncoder
    from tfkosent.config import EncoderConfig
    from tfkosent.data import load_sts
    from tfkosent.layers.packing import num_special_tokens
    from tfkosent.layers.transformer import TransformerEncoder
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from throughput import padded_batches

    examples = load_sts("korsts-test", data_dir=args.data_dir)
    sentences = [e.sentence1 for e in examples] + [e.sentence2 for e in examples]
    model = SentenceEncoder.load(args.model)
    # [CLS] ... [SEP] in the model's own ids (XLM-R's <s> = 0, </s> = 2, <pad> = 1 for the default).
    special = model._backend.preprocessor.tokenizer.get_special_tokens_dict()
    cap = model.max_seq_length - num_special_tokens(1, model._backend.packing)
    rows = [[special["start_of_sequence_id"]] + list(ids[:cap]) + [special["end_of_segment_id"]]
            for ids in model.tokenize(sentences)]
    padding_id = special["padding_id"]
    if args.worker == "ours":
        encoder = model._backend.encoder
    else:
        encoder = TransformerEncoder(EncoderConfig(
            vocab_size=8002, hidden_size=768, num_layers=3, num_heads=12, intermediate_size=3072,
            max_position_embeddings=512, type_vocab_size=2, pooling="mean"))
        encoder.build()
        # KoBERT's [CLS] = 2, [SEP] = 3, [PAD] = 1; ids fold into its 8,002-piece vocabulary.
        rows = [[2] + [t % 8000 + 2 for t in r[1:-1]] + [3] for r in rows]
        padding_id = 1
    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")}
    run = tf.function(lambda x: encoder(x, training=False)["pooled_output"], input_signature=[spec],
                      jit_compile=args.jit)
    _, batches = padded_batches(rows, BATCH_SIZE, pad_to=PAD_TO, padding_id=padding_id)
    start = time.perf_counter()
    for batch in batches:          # every shape once: traces (and XLA compiles) before timing
        run(batch).numpy()
    warmup = time.perf_counter() - start
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for batch in batches:
            run(batch).numpy()
        best = min(best, time.perf_counter() - start)
    return {"sentences_per_s": len(rows) / best, "warmup_s": warmup,
            "shapes": len({b["input_word_ids"].shape for b in batches})}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="tfkosent model dir (default: the default model)")
    parser.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", choices=["ours", "3x768"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--jit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0

    results = {}
    for worker in ("ours", "3x768"):
        for jit in (False, True):
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", worker, "--threads", str(args.threads),
                   "--data-dir", args.data_dir] + (["--jit"] if jit else []) + (["--model", args.model] if args.model else [])
            print(f"running {worker}, XLA {'on' if jit else 'off'} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            if proc.returncode != 0:
                raise RuntimeError(f"worker {worker} (jit={jit}) failed:\n{proc.stderr[-3000:]}")
            results[f"{worker}, XLA {'on' if jit else 'off'}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    print("\n| encoder | sentences/s | warm-up s (traces + compiles) | shapes |\n|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['sentences_per_s']:.1f} | {r['warmup_s']:.1f} | {r['shapes']} |")
    for jit in ("off", "on"):
        ratio = results[f"ours, XLA {jit}"]["sentences_per_s"] / results[f"3x768, XLA {jit}"]["sentences_per_s"]
        print(f"ratio ours / 3x768, XLA {jit}: {ratio:.2f}x")
    if args.json:
        sys.path.insert(0, REPO)
        from tfkosent.evaluation.sts import write_json  # atomic

        write_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
