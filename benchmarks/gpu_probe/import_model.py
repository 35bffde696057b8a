"""Turns what `train_torch.py` brought back into tfkosent model directories.

train_torch.py keeps tfkosent's canonical weight names and Keras kernel layout, so no weight is
renamed or transposed here: the arrays are read, widened to float32 and written with the
vocabulary and config of the model they started from (the `convert` step's directory), with
`encoder.num_layers` set from the weights.

  # a student (float16, two files: PREFIX_embeddings.npz + PREFIX_layers.npz)
  python benchmarks/gpu_probe/import_model.py --base runs/default_model_t2/convert/model \\
      --student runs/gpu_probe_run1/student --out runs/gpu_probe_run1/student_model \\
      --student-of runs/gpu_probe_run1/teacher_model --teacher-layers 3,7,11
  # the teacher (int8 with per-output-unit scales, PREFIX_int8_*.npz)
  python benchmarks/gpu_probe/import_model.py --base runs/default_model_t2/convert/model \\
      --teacher runs/gpu_probe_run1/teacher --out runs/gpu_probe_run1/teacher_model
  # then, as for any model: tfkosent evaluate runs/gpu_probe_run1/student_model --tasks ...
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import sys

import numpy as np


def read_student(prefix: str) -> dict:
    weights = {}
    for part in ("embeddings", "layers"):
        with np.load(f"{prefix}_{part}.npz") as z:
            weights.update({k: z[k].astype(np.float32) for k in z.files})
    return weights


def read_int8(prefix: str) -> dict:
    files = sorted(glob.glob(f"{prefix}_int8_*.npz"))
    if not files:
        raise FileNotFoundError(f"no {prefix}_int8_*.npz")
    weights = {}
    for path in files:
        with np.load(path) as z:
            for key in z.files:
                kind, _, name = key.partition(":")
                if kind == "f32":
                    weights[name] = z[key].astype(np.float32)
                elif kind == "i8":
                    weights[name] = z[key].astype(np.float32) * z["s:" + name]
    return weights


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="model directory the weights started from (vocabulary, config)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--student", help="prefix of PREFIX_embeddings.npz / PREFIX_layers.npz (float16)")
    src.add_argument("--teacher", help="prefix of PREFIX_int8_*.npz")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default=None, help="metadata.name (default: the output directory's name)")
    p.add_argument("--note", action="append", default=[], help="a line for metadata.notes (repeatable)")
    p.add_argument("--student-of", default=None,
                   help="a student's teacher (model directory), recorded as metadata.student_of")
    p.add_argument("--teacher-layers", default=None,
                   help="the teacher layers the student was cut from, e.g. 3,7,11 (train_torch.py's "
                        "choice), recorded as metadata.teacher_layers: distillation losses that map "
                        "hidden states read it")
    args = p.parse_args(argv)

    import os

    from tfkosent.layers.transformer import weight_names
    from tfkosent.model_dir import load_model_dir, save_model_dir

    base = load_model_dir(args.base)
    weights = read_student(args.student) if args.student else read_int8(args.teacher)
    layers = 1 + max(int(k.split("/")[0][len("layer_"):]) for k in weights if k.startswith("layer_"))
    encoder = dataclasses.replace(base.config.encoder, num_layers=layers)
    expected = dict(weight_names(encoder))
    if set(expected) != set(weights) or any(expected[k] != weights[k].shape for k in expected):
        missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
        raise SystemExit(f"weights do not match a {layers}-layer encoder: missing {missing[:5]}, extra {extra[:5]}")
    metadata = dict(base.config.metadata)
    metadata["name"] = args.name or os.path.basename(os.path.normpath(args.out))
    metadata["notes"] = list(metadata.get("notes", [])) + [
        "trained with PyTorch on a GPU by benchmarks/gpu_probe/train_torch.py from the weights of "
        f"{os.path.abspath(args.base)}; imported by benchmarks/gpu_probe/import_model.py"] + args.note
    if args.student_of:
        metadata["student_of"] = args.student_of
    if args.teacher_layers:
        metadata["teacher_layers"] = [int(i) for i in args.teacher_layers.split(",")]
        if len(metadata["teacher_layers"]) != layers:
            raise SystemExit(f"--teacher-layers names {len(metadata['teacher_layers'])} layers, "
                             f"the weights have {layers}")
    if args.teacher:
        metadata["notes"].append("weights are int8 with a float32 scale per output unit (the transfer "
                                 "format of the probe), widened to float32")
    config = dataclasses.replace(base.config, encoder=encoder, metadata=metadata)
    save_model_dir(args.out, config, weights, sentencepiece_proto=base.sentencepiece_proto,
                   wordpiece_vocab=base.wordpiece_vocab)
    print(f"{args.out}: {layers} layers, {sum(v.size for v in weights.values()):,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
