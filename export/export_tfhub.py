"""Publish a tfkosent model as TF Hub-style modules.

    python export/export_tfhub.py --model default --out exports/tfkosent-ko [--seq-length 128] [--overwrite]

Writes <out>/preprocess, <out>/encoder and <out>/sentence_encoder/1 (see
`tfkosent.export` for the contract and README.md for usage) and the model card
<out>/README.md, verifies them by
reloading, and prints what a user loads. The work is done by
`tfkosent.export.export_model`; this script is the publishing entry point that
also reports the modules' sizes and signatures.
"""

import argparse
import os
import sys


def _size_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total / 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="tfkosent model directory or 'default'")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seq-length", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfkosent.cli import resolve_model_dir
    from tfkosent.export import export_model

    out = export_model(resolve_model_dir(args.model), args.out, overwrite=args.overwrite,
                       seq_length=args.seq_length)
    for sub in ("preprocess", "encoder", os.path.join("sentence_encoder", "1")):
        print(f"{os.path.join(out, sub):60s} {_size_mb(os.path.join(out, sub)):8.1f} MB")
    print("\nload with:  hub.KerasLayer(f'{out}/preprocess'), hub.KerasLayer(f'{out}/encoder', trainable=True)")
    print(f"serve with: tensorflow_model_server --model_base_path={out}/sentence_encoder --model_name=tfkosent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
