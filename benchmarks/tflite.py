"""TensorFlow Lite against TensorFlow, side by side, in one run: speed, size and quality.

Exports `--model` (default: the default model) with `tfkosent.tflite.export_tflite` at each
quantization (none, float16, dynamic) into a temporary directory, then times, on the same
sentences and with the same number of threads:
  TF       `SentenceEncoder.encode` (TensorFlow, the model directory)
  TFLite   `TFLiteSentenceEncoder.encode` (sentence_encoder.tflite: strings in, the TFLite
           interpreter with XNNPACK and TF Text's tokenizer op)
  SentenceEncoder on encoder.tflite, dynamic: `SentenceEncoder.load(TFLite export)`, the
           model's TF tokenizer and packing, then encoder.tflite with int8 weights
in batches of `--batch-size` over the 2,758 KorSTS test sentences, and one sentence per call
over the first `--single` of them (a phone's or a request handler's case). Prints
sentences/second, milliseconds per single sentence, each ratio to TF, the .tflite sizes, and
KorSTS dev Spearman (cosine, x100) for each, so that what quantization costs in quality is
beside what it saves.

Then the tokenizer: over the first `--lines` lines of each raw corpus (and both sides of
KorSTS and KLUE-STS train), how many get other token ids from sentence_encoder.tflite's
`FastSentencepieceTokenizer` (after the prefix's ids) than from the model's own preprocessor,
and the lowest cosine between the float32 flat buffer's embedding and `encode()`'s on them.

    python benchmarks/tflite.py [--model DIR] [--threads 2] [--batch-size 32] [--single 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_paths import _median_seconds  # noqa: E402  (one warm-up call, then the median)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--single", type=int, default=200,
                        help="sentences timed one per call (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the median is kept")
    parser.add_argument("--lines", type=int, default=5000,
                        help="lines of each corpus for the tokenizer comparison (default 5000)")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from tfkosent import SentenceEncoder
    from tfkosent.data import load_sts
    from tfkosent.evaluation.sts import evaluate_sts
    from tfkosent.sentence_encoder import resolve_default_model
    from tfkosent.tflite import (ENCODER_MODEL_FILE, QUANTIZATIONS, SENTENCE_MODEL_FILE,
                                 TFLiteSentenceEncoder, export_tflite)

    test = load_sts("korsts-test", data_dir=args.data_dir)
    dev = load_sts("korsts-dev", data_dir=args.data_dir)
    sentences = [e.sentence1 for e in test] + [e.sentence2 for e in test]
    singles = sentences[:args.single]
    model_dir = resolve_default_model(args.model)

    models = {"TF": SentenceEncoder.load(model_dir)}
    sizes = {"TF": os.path.getsize(os.path.join(model_dir, "weights.npz"))}
    tmp = tempfile.mkdtemp(prefix="tflite_bench_")
    for quantization in QUANTIZATIONS:
        out = os.path.join(tmp, quantization)
        export_tflite(model_dir, out, quantization=quantization)
        name = f"TFLite {quantization}"
        models[name] = TFLiteSentenceEncoder.load(out, num_threads=args.threads)
        sizes[name] = os.path.getsize(os.path.join(out, SENTENCE_MODEL_FILE))
    name = "SE+enc.tflite dyn"
    models[name] = SentenceEncoder.load(os.path.join(tmp, "dynamic"), num_threads=args.threads)
    sizes[name] = os.path.getsize(os.path.join(tmp, "dynamic", ENCODER_MODEL_FILE))

    rows = {}
    reference = None
    for name, model in models.items():
        model.encode(sentences[:args.batch_size], batch_size=args.batch_size)   # trace / allocate
        model.encode(singles[0])
        batched = _median_seconds(lambda: model.encode(sentences, batch_size=args.batch_size), args.repeats)
        single = _median_seconds(lambda: [model.encode(s) for s in singles], args.repeats)
        embeddings = model.encode(sentences, batch_size=args.batch_size)
        if reference is None:
            reference = embeddings
        cosine = float(np.min(np.sum(embeddings * reference, axis=1)))
        spearman = evaluate_sts(lambda s: model.encode(s, batch_size=args.batch_size), dev)[
            "cosine_spearman"]
        rows[name] = (len(sentences) / batched, 1000.0 * single / len(singles), sizes[name],
                      cosine, spearman)
        print(f"{name}: {rows[name][0]:.1f} sentences/s, {rows[name][1]:.2f} ms/single", flush=True)

    tf_rate, tf_single = rows["TF"][0], rows["TF"][1]
    print(f"\n{len(sentences)} KorSTS test sentences, batch {args.batch_size}; {len(singles)} single "
          f"calls; {args.threads} threads; median of {args.repeats}")
    print(f"{'':16} {'sentences/s':>12} {'x TF':>6} {'ms/single':>10} {'x TF':>6} {'MiB':>7} "
          f"{'min cos to TF':>14} {'KorSTS dev':>11}")
    for name, (rate, single, size, cosine, spearman) in rows.items():
        print(f"{name:16} {rate:12.1f} {rate / tf_rate:6.2f} {single:10.2f} {tf_single / single:6.2f} "
              f"{size / 2**20:7.1f} {cosine:14.6f} {spearman:11.2f}")
    print("(TF's size: weights.npz, float16 weights; TFLite: sentence_encoder.tflite; SE+enc.tflite "
          "dyn: SentenceEncoder.load of the dynamic export, whose encoder.tflite it runs)")
    tokenizer_agreement(models["TF"], models["TFLite none"], args)
    return 0


def tokenizer_agreement(model, tflite_model, args) -> None:
    import numpy as np
    import tensorflow as tf
    import tensorflow_text as tf_text

    from tfkosent.data import load_raw_sentences, load_sts

    proto = open(os.path.join(model.path, "tokenizer.model"), "rb").read()
    fast = tf_text.FastSentencepieceTokenizer(proto)
    prefix = tflite_model.info["prefix_ids"]
    corpora = {name: load_raw_sentences(name, limit=args.lines, data_dir=args.data_dir)
               for name in ("news-comments", "nsmc-reviews", "3i4k", "chatbot-qa", "news-titles")}
    for name in ("korsts-train", "klue-sts-train"):
        pairs = load_sts(name, data_dir=args.data_dir)[:args.lines]
        corpora[name] = [e.sentence1 for e in pairs] + [e.sentence2 for e in pairs]
    print(f"\nFastSentencepieceTokenizer (+ prefix ids) against the model's tokenizer, first "
          f"{args.lines} lines / pairs of each:")
    total = differing = 0
    worst = 1.0
    for name, texts in corpora.items():
        texts = [t for t in dict.fromkeys(texts)]
        own = model.tokenize(texts)
        ids = fast.tokenize(tf.constant(texts)).to_list()
        bad = [i for i, (f, o) in enumerate(zip(ids, own)) if list(prefix) + f != list(o)]
        lowest = 1.0
        if bad:
            subset = [texts[i] for i in bad]
            cosines = np.sum(model.encode(subset) * tflite_model.encode(subset), axis=1)
            lowest = float(cosines.min())
        worst = min(worst, lowest)
        total += len(texts)
        differing += len(bad)
        example = repr(texts[bad[0]][:40]) if bad else "-"
        print(f"  {name:15} {len(bad):5} of {len(texts):6} differ; lowest cosine {lowest:.4f}; "
              f"first: {example}")
    print(f"  all             {differing:5} of {total:6} ({100.0 * differing / total:.2f}%); lowest "
          f"cosine {worst:.4f}")


if __name__ == "__main__":
    sys.exit(main())
