"""Training-step time of uniform batches, whole or in length-sorted chunks (`length_chunks`).

The question: what does `length_chunks` buy a recipe with `bucket_batches: 1` on this CPU?  One
process, one model (the default model unless --model), the distillation sentences of a recipe
(default: the pipeline's `distill_probe.yaml`, 332,815 sentences), batches of 128 drawn uniformly
at random and packed as the trainer packs them (padded to the batch's longest sentence, rounded up
to 8, capped at --max-seq-length).  Each batch is timed once per setting, the settings in turn on
the same batch, so both see the same machine load; a step is a forward pass, a cosine loss against
fixed random targets and its gradient (what the trainer's step does before the optimizer).  Prints
the median step time and the mean padded width of each setting and the ratio to the first.

    python benchmarks/length_chunks.py --data-dir ../shared/data [--chunks 1,8] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RECIPE = os.path.join(REPO, "tfkosent", "configs", "default_model", "distill_probe.yaml")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="model directory (default: the shipped model)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--recipe", default=DEFAULT_RECIPE, help="its first task's data are the sentences")
    ap.add_argument("--chunks", default="1,8", help="comma-separated length_chunks settings")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="timed batches (after one warm-up batch)")
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    settings = [int(x) for x in args.chunks.split(",")]
    if not settings or min(settings) < 1:
        ap.error(f"--chunks: positive integers, got {args.chunks!r}")

    os.environ["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    sys.path.insert(0, REPO)
    from tfkosent import SentenceEncoder
    from tfkosent.training.config import load_config
    from tfkosent.training.data import load_task_data
    from tfkosent.training.length_chunks import pooled_in_length_chunks

    recipe = load_config(args.recipe)
    sentences = load_task_data("sentences", recipe.tasks[0].data, args.data_dir).texts["text"]
    model = SentenceEncoder.load(args.model)
    encoder = model._backend.encoder
    rng = np.random.default_rng(args.seed)
    picks = [rng.choice(len(sentences), args.batch_size, replace=False) for _ in range(args.steps + 1)]

    def pack(idx):
        packed = model._backend.preprocessor.bert_pack_inputs(
            [model._backend.preprocessor.tokenize(tf.constant([sentences[i] for i in idx]))],
            seq_length=args.max_seq_length)
        width = int(tf.reduce_max(tf.reduce_sum(packed["input_mask"], axis=1)))
        width = min(args.max_seq_length, -(-width // 8) * 8)
        return {k: tf.identity(v[:, :width]) for k, v in packed.items()}

    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")}
    targets = tf.math.l2_normalize(tf.constant(
        rng.normal(size=(args.batch_size, model.embedding_dim)), tf.float32), axis=1)

    def make_step(chunks):
        @tf.function(input_signature=[spec])
        def step(inputs):
            with tf.GradientTape() as tape:
                pooled = tf.cast(pooled_in_length_chunks(encoder, inputs, chunks, training=True), tf.float32)
                loss = tf.reduce_mean(1.0 - tf.reduce_sum(tf.math.l2_normalize(pooled, axis=1) * targets, 1))
            grads = tape.gradient(loss, encoder.trainable_variables)
            return loss, tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads if g is not None])
        return step

    steps = {c: make_step(c) for c in settings}
    times = {c: [] for c in settings}
    widths = {c: [] for c in settings}
    for n, idx in enumerate(picks):
        inputs = pack(idx)
        lengths = np.sort(inputs["input_mask"].numpy().sum(1))
        for c in settings:
            start = time.perf_counter()
            loss, _ = steps[c](inputs)
            float(loss)
            if n:                                   # batch 0 warms every setting up
                times[c].append(time.perf_counter() - start)
                widths[c].append(float(np.mean([part.max() for part in np.array_split(lengths, c)
                                                if len(part)])))
    base = statistics.median(times[settings[0]])
    results = {"model": args.model, "sentences": len(sentences), "batch_size": args.batch_size,
               "steps": args.steps, "threads": args.threads, "settings": {}}
    print(f"{len(sentences)} sentences, {args.steps} uniform batches of {args.batch_size}, "
          f"{args.threads} threads")
    for c in settings:
        med = statistics.median(times[c])
        results["settings"][str(c)] = {"median_step_s": med, "mean_padded_width": float(np.mean(widths[c])),
                                       "speedup_vs_first": base / med}
        print(f"length_chunks {c:>2}: median step {med:.3f} s, mean padded width "
              f"{np.mean(widths[c]):.1f} tokens, {base / med:.2f}x the first setting")
    if args.json:
        sys.path.insert(0, REPO)
        from tfkosent.evaluation.sts import write_json  # atomic

        write_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
