"""Student initialization: a shallower encoder made of chosen teacher layers.

As DistilBERT did (Sanh et al. 2019, arXiv:1910.01108, "taking one layer out
of two"), the student keeps the teacher's embeddings (word, position, token
type, LayerNorm), its pooler, and a subset of its transformer layers:

    teacher layers 0 .. 11, layers [3, 7, 11]  ->  student layers 0, 1, 2

The default subset is `num_layers` evenly spaced layers ending with the last
one (12 -> 3 gives [3, 7, 11], 12 -> 6 gives [1, 3, 5, 7, 9, 11]).  The result
is an ordinary tfkosent model directory with the teacher's vocabulary, ready to
be trained with `distill_cosine`, `distill_mse` or `distill_hidden` against the teacher.

`intermediate_size` narrows every kept layer's feed-forward block (structured
pruning, `tfkosent.training.prune`): a layer keeps the `intermediate_size`
neurons with the largest ||W_in[:, j]|| * ||W_out[j, :]||, in their original
order (a trained model is better pruned by its activations, `prune.py`).  The
FFN is two thirds of a layer's multiply-adds at hidden 384, so halving it makes
the student ~1.5x cheaper per token; distillation then recovers what the
dropped neurons did.

    python -m tfkosent.training.student TEACHER_DIR OUT_DIR --layers 3,7,11 [--intermediate-size 768]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from typing import List, Optional, Sequence

from tfkosent.config import ModelConfig, inherited_metadata
from tfkosent.model_dir import load_model_dir, save_model_dir
from tfkosent.training.prune import prune_ffn  # noqa: F401  (re-exported: its home before prune.py)

_LAYER = re.compile(r"^layer_(\d+)/(.*)$")


def default_student_layers(num_teacher_layers: int, num_layers: int) -> List[int]:
    """`num_layers` evenly spaced teacher layers, the last one included."""
    if not 0 < num_layers <= num_teacher_layers:
        raise ValueError(f"num_layers must be in 1..{num_teacher_layers}, got {num_layers}")
    return [round((i + 1) * num_teacher_layers / num_layers) - 1 for i in range(num_layers)]


def check_layers(layers: Sequence[int], num_teacher_layers: int) -> List[int]:
    layers = list(layers)
    if not layers:
        raise ValueError("layers must name at least one teacher layer")
    bad = [i for i in layers if not isinstance(i, int) or not 0 <= i < num_teacher_layers]
    if bad:
        raise ValueError(f"teacher layer index {bad[0]!r} is out of range: the teacher has "
                         f"{num_teacher_layers} layers (0..{num_teacher_layers - 1})")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers {layers} repeat a teacher layer")
    if layers != sorted(layers):  # a student's layers run in the teacher's order
        raise ValueError(f"layers {layers} are not in increasing order (e.g. {sorted(layers)})")
    return layers


def init_student(teacher_dir: str, out_dir: str, layers: Optional[Sequence[int]] = None,
                 num_layers: Optional[int] = None, overwrite: bool = False,
                 intermediate_size: Optional[int] = None) -> str:
    """Writes a student model directory built from `teacher_dir`; returns its path.

    intermediate_size: keep this many FFN neurons per layer (`prune_ffn`); default all.
    """
    files = load_model_dir(teacher_dir)
    teacher_layers = files.config.encoder.num_layers
    if layers is None:
        if num_layers is None:
            raise ValueError("give layers or num_layers")
        layers = default_student_layers(teacher_layers, num_layers)
    layers = check_layers(layers, teacher_layers)
    weights = {}
    for name, value in files.weights.items():
        match = _LAYER.match(name)
        if match is None:
            weights[name] = value                      # embeddings, pooler
        elif int(match.group(1)) in layers:
            weights[f"layer_{layers.index(int(match.group(1)))}/{match.group(2)}"] = value
    encoder = dataclasses.replace(files.config.encoder, num_layers=len(layers))
    metadata = inherited_metadata(files.config.metadata)
    metadata.update(name=f"{metadata.get('name', 'model')}-student-{len(layers)}l",
                    student_of=files.path, teacher_layers=layers, trained=False)
    if intermediate_size is not None and intermediate_size != encoder.intermediate_size:
        weights = prune_ffn(weights, len(layers), intermediate_size)
        encoder = dataclasses.replace(encoder, intermediate_size=intermediate_size)
        metadata.update(ffn_pruned_from=files.config.encoder.intermediate_size)
    config = ModelConfig(encoder=encoder, preprocess=files.config.preprocess, metadata=metadata)
    return save_model_dir(out_dir, config, weights, sentencepiece_proto=files.sentencepiece_proto,
                          wordpiece_vocab=files.wordpiece_vocab, overwrite=overwrite)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfkosent.training.student",
                                     description="Cut a student encoder out of a teacher's layers.")
    parser.add_argument("teacher_dir")
    parser.add_argument("out_dir")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--layers", help="comma-separated 0-based teacher layers, e.g. 3,7,11")
    group.add_argument("--num-layers", type=int, help="evenly spaced layers, last one included")
    parser.add_argument("--intermediate-size", type=int, default=None,
                        help="FFN neurons kept per layer (largest weight norms); default all")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    try:
        path = init_student(args.teacher_dir, args.out_dir, layers, args.num_layers, args.overwrite,
                            intermediate_size=args.intermediate_size)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
