"""The uniform average of a training run's checkpoints (stochastic weight averaging, after the
fact) as a tfkosent model directory.

    python benchmarks/checkpoint_average.py RUN_DIR OUT --from-step N [--to-step M] [--model START]

Averages every checkpoint `RUN_DIR/checkpoints/ckpt-S` with N <= S <= M (keep them with the
recipe's `checkpoint: {every_steps: 100, keep: 40}`).  A checkpoint's `model/i` is
`encoder.variables[i]` (tfkosent.training.checkpointing), so the encoder is rebuilt from the
run's start model (`model` in RUN_DIR/recipe.json, or --model) to map positions to weight
names; its config and vocabulary go into OUT unchanged.  Bi-encoder runs only.

Session 25 (TRAINING.md "Averaging checkpoints ..."): averaged over any window of student_sts2's
run, the student scored 0.23-0.26 KorSTS dev under its best single checkpoint.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from typing import List, Optional

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def checkpoint_steps(run_dir: str) -> List[int]:
    """The steps of the checkpoints in RUN_DIR/checkpoints, ascending."""
    found = []
    for path in glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.index")):
        match = re.search(r"ckpt-(\d+)\.index$", path)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def average_checkpoints(run_dir: str, out_dir: str, from_step: int, to_step: Optional[int] = None,
                        start_model: Optional[str] = None) -> List[int]:
    """Writes the average of the checkpoints with from_step <= step <= to_step into out_dir
    (float32 weights); returns the steps averaged.  Raises ValueError naming what is missing."""
    import tensorflow as tf

    from tfkosent.model_dir import load_model_dir, save_model_dir
    from tfkosent.training.checkpointing import tf_variable

    if start_model is None:
        with open(os.path.join(run_dir, "recipe.json"), encoding="utf-8") as f:
            start_model = json.load(f)["model"]
    files = load_model_dir(start_model)
    if files.config.metadata.get("task") == "cross-encoder":
        raise ValueError(f"{start_model} is a cross-encoder: this script averages bi-encoder runs")
    steps = [s for s in checkpoint_steps(run_dir)
             if s >= from_step and (to_step is None or s <= to_step)]
    if not steps:
        raise ValueError(f"{run_dir}/checkpoints has no checkpoint in steps [{from_step}, "
                         f"{'end' if to_step is None else to_step}] (it has {checkpoint_steps(run_dir)})")
    encoder = files.build_encoder()
    variables = [tf_variable(v) for v in encoder.variables]
    sums = None
    for step in steps:
        reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints", f"ckpt-{step}"))
        values = [reader.get_tensor(f"model/{i}/.ATTRIBUTES/VARIABLE_VALUE")
                  for i in range(len(variables))]
        for i, (variable, value) in enumerate(zip(variables, values)):
            if tuple(variable.shape) != value.shape:
                raise ValueError(f"ckpt-{step}: model/{i} has shape {value.shape}, {start_model}'s "
                                 f"{variable.name} {tuple(variable.shape)}: not this run's start model?")
        sums = ([v.astype(np.float64) for v in values] if sums is None
                else [t + v for t, v in zip(sums, values)])
    for variable, total in zip(variables, sums):
        if variable.dtype.is_floating:          # not the dropout RNG states
            variable.assign((total / len(steps)).astype(variable.dtype.as_numpy_dtype))
    save_model_dir(out_dir, files.config, encoder.get_weight_dict(),
                   sentencepiece_proto=files.sentencepiece_proto, wordpiece_vocab=files.wordpiece_vocab)
    return steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--from-step", type=int, required=True)
    parser.add_argument("--to-step", type=int, default=None)
    parser.add_argument("--model", default=None, help="the run's start model (default: recipe.json's)")
    args = parser.parse_args(argv)
    try:
        steps = average_checkpoints(args.run_dir, args.out, args.from_step, args.to_step, args.model)
    except (ValueError, FileNotFoundError) as e:
        print(f"checkpoint_average: error: {e}", file=sys.stderr)
        return 2
    print(f"averaged {len(steps)} checkpoints (steps {steps[0]}..{steps[-1]}) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
