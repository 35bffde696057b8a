"""The exported modules' string-to-embedding paths, timed side by side on one export.

    python benchmarks/export_paths.py --export exports/default [--sentences 64] [--repeats 7]

Times, on the first N sentences of KorSTS dev (sentence1), median of `--repeats` calls after
one warm-up call each:

  (a) hub.KerasLayer(preprocess) -> hub.KerasLayer(encoder) -> l2_normalize, the TF Hub
      recipe, which pads every batch to the preprocess module's default seq_length;
  (b) the same with preprocess.tokenize + bert_pack_inputs(seq_length=512): what (a) cost
      when the preprocess default was the model's maximum (before session 26);
  (c) sentence_encoder/1's serving_default, which pads to the batch's longest sentence.

Prints seconds per call, the padded width, and the ratios to (c).  Needs tensorflow_hub.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="a `tfkosent export` directory")
    parser.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    sys.path.insert(0, REPO)
    from tfkosent.quiet_import import import_quietly
    import_quietly()
    import tensorflow as tf
    import tensorflow_hub as hub

    from tfkosent.data import load_sts

    sentences = tf.constant([e.sentence1 for e in load_sts("korsts-dev", args.data_dir)[:args.sentences]])
    preprocess = hub.KerasLayer(os.path.join(args.export, "preprocess"))
    encoder = hub.KerasLayer(os.path.join(args.export, "encoder"))
    pre = hub.load(os.path.join(args.export, "preprocess"))
    serve = tf.saved_model.load(os.path.join(args.export, "sentence_encoder", "1")).signatures["serving_default"]

    def hub_default():
        return tf.nn.l2_normalize(encoder(preprocess(sentences))["pooled_output"], -1)

    def hub_512():
        inputs = pre.bert_pack_inputs([pre.tokenize(sentences)], seq_length=tf.constant(512))
        return tf.nn.l2_normalize(encoder(inputs)["pooled_output"], -1)

    def serving():
        return serve(sentences=sentences)["embeddings"]

    tokens = pre.tokenize(sentences).row_lengths()
    widths = {"(a) hub preprocess -> encoder, preprocess default": preprocess(sentences)["input_word_ids"].shape[1],
              "(b) hub tokenize + bert_pack_inputs(seq_length=512) -> encoder": 512,
              "(c) sentence_encoder/1 serving_default": f"longest ({int(tf.reduce_max(tokens))} tokens + specials)"}
    seconds = {name: _median_seconds(fn, args.repeats)
               for name, fn in zip(widths, (hub_default, hub_512, serving))}
    print(f"{len(sentences)} KorSTS dev sentences per call, median of {args.repeats} calls; export {args.export}")
    print("| path | padded width | s per call | x (c) |\n|---|---|---:|---:|")
    base = seconds["(c) sentence_encoder/1 serving_default"]
    for name, s in seconds.items():
        print(f"| {name} | {widths[name]} | {s:.3f} | {s / base:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
