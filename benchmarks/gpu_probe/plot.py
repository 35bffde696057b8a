"""KorSTS dev after each distillation epoch: the probe's runs against the CPU pipeline's chain.

  python benchmarks/gpu_probe/plot.py --out docs/images/gpu_probe_distillation.png \\
      --run "GPU, 10-epoch schedule stopped at 5=runs/gpu_probe_run1/results.jsonl" \\
      --run "GPU, 5-epoch schedule=runs/gpu_probe_run2/results.jsonl" \\
      --cpu "CPU pipeline (teacher_sts2, one schedule per epoch)=79.91,80.64,81.20,81.53,81.77,82.05"
"""

from __future__ import annotations

import argparse
import json
import sys


def distill_curve(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return [(r["epoch"], r["korsts-dev"]) for r in rows if r.get("phase") == "distill"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--run", action="append", default=[], help="LABEL=results.jsonl")
    p.add_argument("--cpu", action="append", default=[], help="LABEL=dev after epoch 1,2,...")
    args = p.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for spec in args.run:
        label, _, path = spec.rpartition("=")
        xs, ys = zip(*distill_curve(path))
        ax.plot(xs, ys, marker="o", label=label)
    for spec in args.cpu:
        label, _, values = spec.rpartition("=")
        ys = [float(v) for v in values.split(",")]
        ax.plot(range(1, len(ys) + 1), ys, marker="s", linestyle="--", label=label)
    ax.set_xlabel("distillation epochs over the 332,815 sentences")
    ax.set_ylabel("KorSTS dev, cosine Spearman x100")
    ax.set_title("3-layer student after distillation (before CoSENT)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
