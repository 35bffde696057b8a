"""Training steps per second with one step a call from Python and with `steps_per_loop: K`.

The question: how much of a training step is the host's dispatch, which `steps_per_loop` (a
`tf.range` loop of K steps inside one tf.function) removes?  One process trains the tests' tiny
model (2 layers, hidden 32, random weights, `tfkosent.testing`) with CoSENT on synthetic KorSTS
pairs (`tfkosent.training.synthetic`), batches of --batch-size, no evaluation, no checkpoint
before the end, for --steps steps, once per setting, the settings alternating for --repeats
rounds so that each sees the same machine load.  A run's clock starts at its first log line
(`--log-every`; the first window holds the tracing) and stops at its last: steps/s is measured
over the steps between, each log line reading the losses from the device (so the clock waits
for the steps it counts).  Prints each setting's median steps/s over the rounds, every round's
value, and the ratio of K's median to 1's.  A tiny model makes the dispatch's share large; on a
real model, and on CPU, the gain is smaller.

    python benchmarks/steps_per_loop.py [--k 8] [--steps 320] [--log-every 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=8, help="steps_per_loop compared with 1")
    ap.add_argument("--steps", type=int, default=320, help="steps of each run")
    ap.add_argument("--log-every", type=int, default=64,
                    help="log_every: a loop never runs past a log line (a multiple of --k keeps "
                         "every loop K steps long); the first window is not timed")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of (1, K)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--strategy", default="auto", help="the recipe's strategy (auto: a GPU if any)")
    ap.add_argument("--threads", type=int, default=2, help="TensorFlow's intra-op threads (CPU)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.k < 2:
        ap.error(f"--k: at least 2, got {args.k}")
    if args.steps < 2 * args.log_every:
        ap.error(f"--steps must be at least 2 x --log-every ({2 * args.log_every}): the first "
                 f"window is not timed")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    sys.path.insert(0, REPO)
    import warnings

    from tfkosent import testing
    from tfkosent.training import parse_config, synthetic
    from tfkosent.training.trainer import Trainer

    warnings.filterwarnings("ignore", message=".*the registry expects.*")  # synthetic row counts
    root = tempfile.mkdtemp(prefix="steps_per_loop_")
    data = synthetic.write_data_dir(os.path.join(root, "data"), datasets=["korsts-train"],
                                    sts_train=(args.steps + 1) * args.batch_size)
    model = testing.write_tiny_model(os.path.join(root, "model"),
                                     sentences=synthetic.vocabulary_sentences())

    marks = []  # (step, time) after each read of the losses (log lines, the final checkpoint)
    read_losses = Trainer._read_losses

    def timed(self):
        read_losses(self)
        marks.append((self.state.position[0], time.perf_counter()))

    Trainer._read_losses = timed

    def steps_per_second(k: int, round_: int) -> float:
        config = parse_config({
            "model": model, "output_dir": os.path.join(root, f"run_{k}_{round_}"), "seed": 0,
            "strategy": args.strategy, "max_steps": args.steps, "steps_per_loop": k,
            "tasks": [{"loss": "cosent", "data": ["korsts-train"], "batch_size": args.batch_size}],
            "optimizer": {"learning_rate": 1e-4}, "eval": None,
            "checkpoint": {"every_steps": 10 ** 9, "keep": 1}, "log_every": args.log_every,
            "progress_bar": False})
        marks.clear()
        Trainer(config, data_dir=data).fit()
        logged = {}
        for step, at in marks:
            logged.setdefault(step, at)           # the final checkpoint's read: same step again
        first, last = args.log_every, max(s for s in logged if s % args.log_every == 0)
        return (last - first) / (logged[last] - logged[first])

    results = {1: [], args.k: []}
    for round_ in range(args.repeats):
        for k in (1, args.k) if round_ % 2 == 0 else (args.k, 1):
            results[k].append(steps_per_second(k, round_))
            print(f"round {round_ + 1}: steps_per_loop {k:>3}: {results[k][-1]:8.1f} steps/s", flush=True)
    median = {k: statistics.median(v) for k, v in results.items()}
    print(f"\ntiny model (2 layers, hidden 32), batch {args.batch_size}, {args.steps} steps a run, "
          f"timed over steps {args.log_every}-{args.steps // args.log_every * args.log_every}, "
          f"{args.repeats} round(s), device: {tf.config.list_logical_devices()[-1].name}")
    for k, value in median.items():
        print(f"steps_per_loop {k:>3}: median {value:8.1f} steps/s  "
              f"(rounds: {', '.join(f'{v:.1f}' for v in results[k])})")
    print(f"ratio (steps_per_loop {args.k} / 1): {median[args.k] / median[1]:.2f}x")
    if args.json:
        from tfkosent.evaluation.sts import write_json  # atomic

        write_json({"args": vars(args), "steps_per_second": {str(k): v for k, v in results.items()},
                    "median": {str(k): v for k, v in median.items()},
                    "ratio": median[args.k] / median[1]}, args.json)
    import shutil
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
