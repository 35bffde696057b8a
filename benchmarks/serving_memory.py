"""Peak memory of one sentence_encoder/1 request of N long sentences, on the path TF Serving runs.

    python benchmarks/serving_memory.py --export /tmp/wt_serving_export --rows 4 16

Each N runs in a fresh process: the SavedModel is loaded into a TF1 session, as TF Serving loads
it, and its signature tensors are fed by name (no TF Serving binary is needed). One short request
warms it up, then one request of N sentences of over 512 tokens each (so padded and truncated to
the default model's 512) runs. Prints the process's peak resident memory (ru_maxrss) after the
warm-up and after the request: the difference is what the request cost. docs/serving.md quotes
it to size `tfkosent export --max-batch-tokens`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(export: str, rows: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.path.insert(0, REPO)
    from tfkosent.quiet_import import import_quietly

    import_quietly()  # tensorflow and tensorflow_text (a model server with TF.Text's ops linked)
    import numpy as np
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # the TF1 loader's deprecation notice

    session = tf.compat.v1.Session(graph=tf.Graph())
    with session.graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(
            session, ["serve"], os.path.join(export, "sentence_encoder", "1"))
    signature = meta.signature_def["serving_default"]
    feed, fetch = signature.inputs["sentences"].name, signature.outputs["embeddings"].name

    def run(sentences):
        return session.run(fetch, {feed: np.array([s.encode() for s in sentences], dtype=object)})

    run(["짧은 문장"])
    base = _peak_mb()
    start = time.perf_counter()
    out = run([f"가나다 {i} " + "가나다 " * 400 for i in range(rows)])
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    print(f"{rows:4d} rows x 512 tokens: peak RSS {base:,.0f} MB after warm-up -> {peak:,.0f} MB "
          f"(+{peak - base:,.0f} MB), {seconds:.1f} s, embeddings {list(out.shape)}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="a `tfkosent export` directory")
    parser.add_argument("--rows", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process's N
    args = parser.parse_args(argv)
    if args.one is not None:
        measure(args.export, args.one)
        return 0
    for rows in args.rows:
        subprocess.run([sys.executable, __file__, "--export", args.export, "--one", str(rows)],
                       check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
