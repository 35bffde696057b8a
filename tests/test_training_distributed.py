"""The training loop under tf.distribute.MirroredStrategy over two logical CPU devices.

Logical devices must be configured before TensorFlow initializes, so everything
runs in a fresh subprocess (the rest of the test session has TF running).  It checks

  * equivalence: with dropout off, a mirrored run (each replica half of every
    batch, loss / 2 per replica, gradients summed, clipped by their global norm)
    ends with the same weights as a single-device run of cosine-MSE (a
    per-example mean, so the halves average to the whole); clipping is active; the same
    with `steps_per_loop: 3` (several steps in one call) as with one step a call;
  * the replicas' gradients are summed once per step, clipping included;
  * the same with an update proportional to the gradient (Adam's is scale-invariant): the
    loss is divided by the number of replicas, not summed twice;
  * dropout masks differ between the replicas (`ReplicaDropout`);
  * a mirrored CoSENT run trains: the loss falls and the dev Spearman rises;
  * the dev evaluation splits its rows between the replicas (each encodes half, padded to an
    even count) and gives the single-device embeddings.
"""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import numpy as np
    from tfkosent import testing
    from tfkosent.training import parse_config, synthetic, train
    from tfkosent.training.reporting import read_metrics

    root = sys.argv[1]
    data = synthetic.write_data_dir(root + "/data", datasets=["korsts-train", "korsts-dev"])
    words = synthetic.vocabulary_sentences()
    out = {"devices": [d.name for d in tf.config.list_logical_devices("CPU")]}

    # 1. mirrored == single device (no dropout, clipping active)
    still = testing.write_tiny_model(root + "/still", sentences=words, dropout_rate=0.0)
    weights = {}
    # Every cross-replica sum traced into the train step, by the number of tensors it sums: the
    # gradients must be summed once (clipping after the sum used to add a second sum of them all)
    sums = []
    all_reduce = tf.distribute.ReplicaContext.all_reduce
    def counting_all_reduce(self, reduce_op, value, options=None):
        sums.append(len(tf.nest.flatten(value)))
        return all_reduce(self, reduce_op, value, options)
    tf.distribute.ReplicaContext.all_reduce = counting_all_reduce
    for strategy in ("mirrored", "default"):
        config = parse_config({
            "model": still, "output_dir": f"{root}/eq_{strategy}", "strategy": strategy,
            "tasks": [{"loss": "cosine_mse", "data": ["korsts-train"], "batch_size": 16}],
            "max_steps": 4, "optimizer": {"learning_rate": 1e-3, "warmup_ratio": 0.0, "clip_norm": 0.05},
            "eval": None, "progress_bar": False})
        result = train(config, data_dir=data)
        with np.load(result.model_dir + "/weights.npz") as w:
            weights[strategy] = {k: w[k] for k in w.files}
        if strategy == "mirrored":
            out["gradient_sums"] = [n for n in sums if n > 1]
            out["num_weights"] = len(w.files)
    tf.distribute.ReplicaContext.all_reduce = all_reduce
    out["max_weight_difference"] = max(float(np.abs(weights["mirrored"][k] - weights["default"][k]).max())
                                       for k in weights["default"])
    out["max_weight_change"] = max(float(np.abs(weights["default"][k] - np.load(still + "/weights.npz")[k]).max())
                                   for k in weights["default"])

    # 1c. steps_per_loop 3 (a device loop of steps 1-3, then one of step 4): the same run
    config = parse_config({
        "model": still, "output_dir": f"{root}/eq_loop", "strategy": "mirrored", "steps_per_loop": 3,
        "tasks": [{"loss": "cosine_mse", "data": ["korsts-train"], "batch_size": 16}],
        "max_steps": 4, "optimizer": {"learning_rate": 1e-3, "warmup_ratio": 0.0, "clip_norm": 0.05},
        "eval": None, "progress_bar": False})
    result = train(config, data_dir=data)
    with np.load(result.model_dir + "/weights.npz") as w:
        out["loop_max_weight_difference"] = max(float(np.abs(w[k] - weights["mirrored"][k]).max())
                                                for k in w.files)

    # 1b. the same with an update proportional to the gradient (Adam with epsilon >> |g|, no
    # clipping, no decay): Adam's usual update is invariant to the loss's scale, so 1. alone
    # would not notice a loss that is not divided by the number of replicas
    for strategy in ("mirrored", "default"):
        config = parse_config({
            "model": still, "output_dir": f"{root}/lin_{strategy}", "strategy": strategy,
            "tasks": [{"loss": "cosine_mse", "data": ["korsts-train"], "batch_size": 16}],
            "max_steps": 2, "optimizer": {"learning_rate": 100.0, "warmup_ratio": 0.0, "clip_norm": None,
                                          "epsilon": 1e3, "weight_decay": 0.0},
            "eval": None, "progress_bar": False})
        result = train(config, data_dir=data)
        with np.load(result.model_dir + "/weights.npz") as w:
            weights[strategy] = {k: w[k] for k in w.files}
    start = np.load(still + "/weights.npz")
    change = {s: {k: weights[s][k] - start[k] for k in start.files} for s in weights}
    out["linear_change_ratio"] = float(sum(np.abs(change["mirrored"][k]).sum() for k in start.files)
                                       / sum(np.abs(change["default"][k]).sum() for k in start.files))
    out["linear_max_change"] = max(float(np.abs(c).max()) for c in change["default"].values())

    # 3. dropout masks differ between replicas (Keras' Dropout seed state is mirrored: without
    # tfkosent.layers.ReplicaDropout every replica drew the same mask)
    from tfkosent.layers import ReplicaDropout
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        dropout = ReplicaDropout(0.5, seed=3)
    masks = strategy.run(tf.function(lambda: dropout(tf.ones([64]), training=True)))
    first, second = [t.numpy() for t in strategy.experimental_local_results(masks)]
    out["dropout_rows_equal"] = float(np.mean((first == 0) == (second == 0)))

    # 2. a mirrored CoSENT run trains
    model = testing.write_tiny_model(root + "/model", sentences=words)
    config = parse_config({
        "model": model, "output_dir": root + "/cosent", "strategy": "mirrored", "seed": 0,
        "tasks": [{"loss": "cosent", "data": ["korsts-train"], "batch_size": 16}], "epochs": 2,
        "optimizer": {"learning_rate": 1e-3}, "eval": {"every_steps": 10}, "log_every": 1,
        "progress_bar": False})
    from tfkosent.training.trainer import Trainer
    trainer = Trainer(config, data_dir=data)
    result = trainer.fit()
    out["replicas"] = trainer.strategy.num_replicas_in_sync
    out["strategy"] = type(trainer.strategy).__name__
    out["losses"] = [r["loss"] for r in read_metrics(root + "/cosent/metrics.jsonl", "train")]
    out["spearman"] = [r["cosine_spearman"] for r in read_metrics(root + "/cosent/metrics.jsonl", "eval")]
    out["best"] = result.best_score

    # 4. the dev encoder: each replica encodes its own rows, in order, like one device does
    rows_seen = []
    encoder = trainer.encoder
    class CountingEncoder:
        def __call__(self, inputs, training=False):
            record = tf.py_function(lambda n: rows_seen.append(int(n)) or 0,
                                    [tf.shape(inputs["input_word_ids"])[0]], tf.int32)
            with tf.control_dependencies([record]):
                return encoder(inputs, training=training)
    trainer.encoder = CountingEncoder()
    sentences = ["나는 밥을 먹는다.", "고양이", "우리는 공원에서 축구를 한다 " * 3, "가", "책을 읽는다"]
    split = trainer._make_encode_fn()(sentences)
    trainer.encoder = encoder
    packed = trainer.preprocessor.bert_pack_inputs([trainer._tokenize(tf.constant(sentences))],
                                                   64)  # padded longer: masked out
    whole = encoder(packed, training=False)["pooled_output"].numpy()
    whole /= np.linalg.norm(whole, axis=1, keepdims=True)
    out["eval_rows_seen"] = sorted(rows_seen)
    out["eval_max_difference"] = float(np.abs(split - whole).max())
    print("RESULT " + json.dumps(out))
""")


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert len(out["devices"]) == 2
    assert out["strategy"] == "MirroredStrategy" and out["replicas"] == 2
    assert out["max_weight_change"] > 1e-3                     # the 4 steps did move the weights
    assert out["max_weight_difference"] < 1e-5, out            # ... identically on 1 and 2 replicas
    assert out["loop_max_weight_difference"] < 1e-6, out       # ... and with steps_per_loop 3
    # MirroredStrategy traces the replica step once per replica; each trace must sum the gradients
    # once (clipping after the sum used to add a second sum of them all: [37] * 4)
    assert out["gradient_sums"] == [out["num_weights"]] * 2, out
    assert out["linear_max_change"] > 1e-3                      # an update proportional to the loss
    assert abs(out["linear_change_ratio"] - 1.0) < 1e-3, out    # ... the same size on 2 replicas
    assert out["dropout_rows_equal"] < 0.8, out                 # independent masks agree on ~half
    losses = out["losses"]
    assert len(losses) == 50 and sum(losses[-5:]) < 0.95 * sum(losses[:5])
    assert out["best"] > out["spearman"][0] + 2.0, out["spearman"]
    assert out["eval_rows_seen"] == [3, 3], out                 # 5 sentences + 1 padding row, halved
    assert out["eval_max_difference"] < 1e-5, out
