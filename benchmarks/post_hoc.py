"""Changes to a trained bi-encoder that need no training, scored with the evaluation protocol.

Two probes, each printing cosine Spearman / Pearson x 100 per task (whole sets):

    # weight averages ("model soups") of models of one architecture: uniform, or --weights
    python benchmarks/post_hoc.py soup runs/a/model runs/b/model [--weights 0.7,0.3] \
        [--tasks korsts-dev] [--data-dir ../shared/data]

    # embedding centering: subtract the mean embedding of training sentences (KorSTS train +
    # KLUE-STS train, a seeded sample; no evaluation sentence enters the mean)
    python benchmarks/post_hoc.py center default [--sample 6000] [--tasks korsts-dev,korsts-test,klue-sts-dev]

`center` reports the model unchanged and four variants: the raw mean removed, the mean of the
unit vectors removed from the unit vectors (all or half of it), and that plus the top principal
direction of the centred unit vectors removed.  Session 23 (TRAINING.md) ran both on the shipped
model; neither moved KorSTS dev by more than seed noise, and centering lowered every set.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model_dir(name: str) -> str:
    from tfkosent.sentence_encoder import default_model_path
    return default_model_path() if name == "default" else name


def soup(args) -> dict:
    import numpy as np
    from tfkosent.evaluation.sts import run_tasks
    from tfkosent.sentence_encoder import SentenceEncoder

    dirs = [_model_dir(m) for m in args.models]
    weights = ([float(w) for w in args.weights.split(",")] if args.weights
               else [1.0 / len(dirs)] * len(dirs))
    if len(weights) != len(dirs):
        raise SystemExit(f"--weights has {len(weights)} values for {len(dirs)} models")
    loaded = [np.load(os.path.join(d, "weights.npz")) for d in dirs]
    keys = loaded[0].files
    for d, w in zip(dirs[1:], loaded[1:]):
        if sorted(w.files) != sorted(keys) or any(w[k].shape != loaded[0][k].shape for k in keys):
            raise SystemExit(f"{d}: not the architecture of {dirs[0]} (weight names or shapes differ)")
    with tempfile.TemporaryDirectory() as tmp:
        for f in ("config.json", "tokenizer.model"):
            shutil.copy(os.path.join(dirs[0], f), tmp)
        # float32 sums whatever each file stores (the shipped package is float16)
        np.savez(os.path.join(tmp, "weights.npz"),
                 **{k: sum(wt * w[k].astype(np.float32) for wt, w in zip(weights, loaded)) for k in keys})
        encoder = SentenceEncoder.load(tmp)
        results = run_tasks(lambda s: encoder.encode(s), args.tasks, data_dir=args.data_dir)
    label = " + ".join(f"{w:.3g} x {m}" for w, m in zip(weights, args.models))
    return {label: results}


def center(args) -> dict:
    import numpy as np
    from tfkosent.data import load_sts
    from tfkosent.evaluation.sts import compute_similarities, sts_metrics
    from tfkosent.sentence_encoder import SentenceEncoder

    encoder = SentenceEncoder.load(_model_dir(args.models[0]))
    train = (load_sts("korsts-train", data_dir=args.data_dir)
             + load_sts("klue-sts-train", data_dir=args.data_dir))
    sentences = sorted({s for e in train for s in (e.sentence1, e.sentence2)})
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(sentences), min(args.sample, len(sentences)), replace=False)
    raw = encoder.encode([sentences[i] for i in pick], normalize_embeddings=False)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    raw_mean, unit_mean = raw.mean(0), unit.mean(0)
    _, vectors = np.linalg.eigh(np.cov(unit - unit_mean, rowvar=False))
    top = vectors[:, -1:]

    def normed(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    variants = {
        "unchanged": lambda x: x,
        "raw mean removed": lambda x: x - raw_mean,
        "unit mean removed": lambda x: normed(x) - unit_mean,
        "half the unit mean removed": lambda x: normed(x) - 0.5 * unit_mean,
        "unit mean and top direction removed":
            lambda x: (lambda y: y - (y @ top) @ top.T)(normed(x) - unit_mean),
    }
    print(f"mean of {len(pick)} training embeddings: |raw mean| {np.linalg.norm(raw_mean):.3f}, "
          f"mean |x| {np.linalg.norm(raw, axis=1).mean():.3f}, |mean of unit vectors| "
          f"{np.linalg.norm(unit_mean):.3f}")
    results = {name: {} for name in variants}
    for task in args.tasks:
        examples = load_sts(task, data_dir=args.data_dir)
        # each sentence encoded once per task; the variants only transform its embedding
        texts = sorted({s for e in examples for s in (e.sentence1, e.sentence2)})
        raw_of = dict(zip(texts, encoder.encode(texts, normalize_embeddings=False)))
        for name, fn in variants.items():
            sims = compute_similarities(lambda s, fn=fn: fn(np.stack([raw_of[t] for t in s])), examples)
            results[name][task] = sts_metrics(sims, examples)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("soup", "center"))
    parser.add_argument("models", nargs="+", help="model directories ('default': the shipped model)")
    parser.add_argument("--weights", default=None, help="soup: comma-separated weights (default uniform)")
    parser.add_argument("--sample", type=int, default=6000, help="center: training sentences in the mean")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="korsts-dev")
    parser.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    args = parser.parse_args(argv)
    args.tasks = [t for t in args.tasks.split(",") if t]
    sys.path.insert(0, REPO)
    if args.probe == "center" and len(args.models) != 1:
        parser.error("center takes one model")
    results = soup(args) if args.probe == "soup" else center(args)
    print("| model | " + " | ".join(f"{t} Spearman | {t} Pearson" for t in args.tasks) + " |")
    print("|---|" + "---:|---:|" * len(args.tasks))
    for name, per_task in results.items():
        cells = " | ".join(f"{per_task[t]['cosine_spearman']:.2f} | {per_task[t]['cosine_pearson']:.2f}"
                           for t in args.tasks)
        print(f"| {name} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
