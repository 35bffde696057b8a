"""What a run leaves behind besides checkpoints: metrics, TensorBoard, data-order log, plot.

    metrics.jsonl   one JSON record per logged step and task ({"kind": "train", "step",
                    "task", "loss", "learning_rate", "epoch"}) and per evaluation ({"kind":
                    "eval", "step", "cosine_spearman", ...}); a resumed run appends, and
                    readers keep the last record per (kind, step, task)
    batches.jsonl   with `log_batches: true`: {"step", "epoch", "position", "task",
                    "batch", "examples"} of every step, written before the step runs
    logs/           TensorBoard scalars: train/<task>/loss, train/<task>/learning_rate, eval/*
    loss_curve.png  training loss (and dev Spearman) against step, drawn at the end

`python -m tfkosent.training.reporting --curve LABEL=RUN1,RUN2 --out PNG` plots the dev
curves of runs that continue each other (distillation epochs), several chains on one axis.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

logger = logging.getLogger("tfkosent.training")

METRICS_FILE = "metrics.jsonl"
BATCHES_FILE = "batches.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _scalar_metadata():
    from tensorflow.core.framework import summary_pb2
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


def _open_for_append(path: str):
    """`path` opened for appending lines, after cutting a torn last line (one a crash, power
    loss or full disk left without its newline): a new record appended to it would join the
    fragment into one undecodable line."""
    if os.path.isfile(path):
        with open(path, "rb+") as f:
            end = f.seek(0, os.SEEK_END)
            cut = end
            # Only the tail is read (batches.jsonl grows by a line per step): back to the last
            # newline, 64 KiB at a time.
            while cut > 0:
                start = max(0, cut - 65536)
                f.seek(start)
                newline = f.read(cut - start).rfind(b"\n")
                if newline >= 0:
                    cut = start + newline + 1
                    break
                cut = start
            if cut < end:
                f.truncate(cut)
                logger.warning("%s: dropped a torn last line (%d bytes) left by an interrupted run",
                               path, end - cut)
    return open(path, "a", encoding="utf-8")


class RunLog:
    """Appends to metrics.jsonl / batches.jsonl and writes TensorBoard scalars."""

    def __init__(self, output_dir: str, log_batches: bool = False, tensorboard: bool = True):
        self.output_dir = output_dir
        self._metrics = _open_for_append(os.path.join(output_dir, METRICS_FILE))
        self._batches = (_open_for_append(os.path.join(output_dir, BATCHES_FILE))
                         if log_batches else None)
        self._writer = None
        if tensorboard:
            import tensorflow as tf
            self._writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs"))

    def record(self, kind: str, step: int, **values) -> None:
        line = {"kind": kind, "step": int(step), **{k: _clean(v) for k, v in values.items()}}
        self._metrics.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._metrics.flush()
        if self._writer is not None:
            import tensorflow as tf
            with self._writer.as_default(step=int(step)):
                prefix = f"{kind}/{values['task']}" if "task" in values else kind
                for key, value in values.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        # tf.summary.write with the scalars plugin's metadata: what
                        # tf.summary.scalar writes, without needing the tensorboard package.
                        tf.summary.write(f"{prefix}/{key}", tf.constant(float(value), tf.float32),
                                         metadata=_scalar_metadata())

    def note(self, step: int, message: str) -> None:
        """A free-form event (start, resume, interruption) in metrics.jsonl and batches.jsonl."""
        self.record("event", step, message=message)
        if self._batches is not None:
            self._batches.write(json.dumps({"event": message, "step": int(step)}) + "\n")
            self._batches.flush()

    def batch(self, **values) -> None:
        if self._batches is not None:
            self._batches.write(json.dumps(values) + "\n")
            self._batches.flush()

    def close(self) -> None:
        self._metrics.close()
        if self._batches is not None:
            self._batches.close()
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()


def _records(path: str) -> List[Dict]:
    """The records of a .jsonl log written by the latest fresh start (a "start" event
    begins a new run in the same directory; earlier records belong to a failed one)."""
    records: List[Dict] = []
    if os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except ValueError as e:  # a torn line of a killed run: reports go on
                        logger.warning("%s:%d: skipped an unreadable record (%s)", path, number, e)
                        continue
                    if record.get("event", record.get("message")) == "start":
                        records = []
                    records.append(record)
    return records


def read_metrics(path: str, kind: Optional[str] = None) -> List[Dict]:
    """Records of metrics.jsonl, the last one per (kind, step, task), sorted by step."""
    latest: Dict = {}
    for record in _records(path):
        if kind is None or record["kind"] == kind:
            latest[(record["kind"], record["step"], record.get("task"))] = record
    return sorted(latest.values(), key=lambda r: r["step"])


def read_batch_log(path: str) -> List[Dict]:
    """The steps of batches.jsonl as a resumed run defines them: a step logged
    again after a resume replaces the earlier (lost) one."""
    steps: Dict[int, Dict] = {}
    for record in _records(path):
        if "event" in record:
            if record["event"].startswith("resume"):
                steps = {s: r for s, r in steps.items() if s <= record["step"]}
            continue
        steps[record["step"]] = record
    return [steps[s] for s in sorted(steps)]


def _new_axes():
    """A 7x4-inch figure with one axes, drawn with Agg (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, ax, png_path: str, title: str) -> str:
    """Title, tight layout, and the PNG written atomically (temporary file, then rename)."""
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    tmp = png_path + ".tmp"
    fig.savefig(tmp, format="png")
    os.replace(tmp, png_path)
    return png_path


def plot_loss_curve(metrics_path: str, png_path: str, title: str = "") -> Optional[str]:
    """Training loss per task (and dev cosine Spearman, right axis) against step; PNG via Agg."""
    train = read_metrics(metrics_path, "train")
    evals = read_metrics(metrics_path, "eval")
    if not train:
        return None
    fig, ax = _new_axes()
    for task in sorted({r["task"] for r in train}):
        points = [(r["step"], r["loss"]) for r in train if r["task"] == task and r["loss"] is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=f"loss ({task})", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if evals:
        ax2 = ax.twinx()
        key = _dev_key(evals)
        name = "dev cosine Spearman" if key == "cosine_spearman" else "dev Spearman"
        ax2.plot([r["step"] for r in evals], [r.get(key) for r in evals], "o-",
                 color="tab:red", ms=3, lw=1, label=name)
        ax2.set_ylabel(f"{name} (x100)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=8, loc="best")
    return _save(fig, ax, png_path, title)


def _dev_key(evals) -> str:
    """The dev metric of a run: bi-encoders log `cosine_spearman`, cross-encoders `spearman`."""
    return "cosine_spearman" if "cosine_spearman" in evals[0] else "spearman"


def _chain(metrics_paths: Sequence[str], key: Optional[str]) -> Tuple[List[Tuple[int, float]], List[int]]:
    """(dev curve, run ends) of runs that continue each other; each file is read once.
    key None: each run's own dev metric (`_dev_key`)."""
    points: List[Tuple[int, float]] = []
    ends: List[int] = []
    offset = 0
    for i, path in enumerate(metrics_paths):
        records = read_metrics(path)
        evals = [r for r in records if r["kind"] == "eval"]
        if not evals:
            raise ValueError(f"{path}: no evaluation records")
        run_key = key or _dev_key(evals)
        points += [(offset + r["step"], float(r[run_key])) for r in evals if i == 0 or r["step"] > 0]
        offset += max(r["step"] for r in records)
        ends.append(offset)
    return points, ends


def chained_dev_curve(metrics_paths: Sequence[str],
                      key: str = "cosine_spearman") -> List[Tuple[int, float]]:
    """The dev curve of runs that continue each other (epoch 2 starts from epoch 1's model).

    metrics_paths: the runs' metrics.jsonl in order.  Steps add up: run k's step s is
    plotted at s plus the last step of runs 0..k-1.  A later run's step-0 evaluation
    (the previous run's model again) is dropped.  Returns [(step, score)] sorted.
    """
    return _chain(metrics_paths, key)[0]


def plot_dev_curves(curves: Dict[str, Sequence[str]], png_path: str, title: str = "",
                    ymin: Optional[float] = None) -> str:
    """Dev Spearman of several run chains on one axis (cosine for bi-encoders, the score for
    cross-encoders); PNG via Agg, written atomically.

    curves: {label: metrics.jsonl paths of the chain, in order} (`chained_dev_curve`).
    The first chain's run ends are drawn as dotted vertical lines.  ymin: the lower end of the
    score axis (an untrained model's step-0 score, say 7, otherwise flattens the curves above 80).
    """
    fig, ax = _new_axes()
    for n, (label, paths) in enumerate(curves.items()):
        points, ends = _chain(paths, None)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", ms=3, lw=1, label=label)
        step, score = points[-1]
        ax.annotate(f"{score:.2f}", (step, score), fontsize=8, xytext=(3, 3),
                    textcoords="offset points")
        if n == 0:
            for end in ends:
                ax.axvline(end, color="grey", ls=":", lw=1)
    ax.set_xlabel("step (runs chained)")
    ax.set_ylabel("dev Spearman (x100; cosine for bi-encoders)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if ymin is not None:
        ax.set_ylim(bottom=ymin)
    return _save(fig, ax, png_path, title)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m tfkosent.training.reporting --curve LABEL=RUN1,RUN2 ... --out PNG`."""
    import argparse
    parser = argparse.ArgumentParser(
        prog="python -m tfkosent.training.reporting",
        description="Plot the dev curves of run chains (each RUN a run directory or its "
                    "metrics.jsonl; a chain's runs continue each other) into one PNG; dotted "
                    "lines mark where the first chain's runs end.")
    parser.add_argument("--curve", action="append", required=True, metavar="LABEL=RUN[,RUN...]")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--title", default="")
    parser.add_argument("--ymin", type=float, default=None,
                        help="lower end of the score axis (points under it are cut off)")
    args = parser.parse_args(argv)
    curves: Dict[str, List[str]] = {}
    for spec in args.curve:
        label, sep, runs = spec.partition("=")
        if not sep or not label or not runs:
            parser.error(f"--curve {spec!r}: expected LABEL=RUN[,RUN...]")
        paths = [os.path.join(r, METRICS_FILE) if os.path.isdir(r) else r for r in runs.split(",")]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            parser.error(f"--curve {label}: no such metrics file: {', '.join(missing)}")
        curves[label] = paths
    try:
        print(plot_dev_curves(curves, args.out, args.title, ymin=args.ymin))
    except ValueError as e:
        parser.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
