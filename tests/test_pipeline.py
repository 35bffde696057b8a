"""The default-model step runner (tfkosent.pipeline): skipping, resuming, selection,
dry runs and failures, with cheap fake steps; and the real pipeline file's recipes."""

import json
import os

import pytest

from tfkosent.pipeline.default_model import (DEFAULT_PIPELINE, DONE_FILE, Pipeline,
                                             PipelineError, load_spec)

SPEC = """
recipe_work_dir: runs/default_model
options: {extra: true}
steps:
  - {name: a, kind: fake}
  - {name: b, kind: fake, args: {model: a}}
  - {name: opt, kind: fake, when: extra}
  - {name: c, kind: fake}
  - {name: d, kind: fake}
"""
NAMES = ["a", "b", "opt", "c", "d"]


@pytest.fixture
def make(tmp_path):
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    calls, fail = [], set()

    def fake(ctx):
        calls.append((ctx.step.name, ctx.partial))
        if "model" in ctx.args:
            ctx.model_of(ctx.args["model"])
        if ctx.step.name in fail:
            (open(os.path.join(ctx.dir, "half-written"), "w")).close()
            raise RuntimeError("boom")
        os.makedirs(os.path.join(ctx.dir, "model"), exist_ok=True)
        return {"model": os.path.join(ctx.dir, "model")}

    def build(**kw):
        return Pipeline(str(spec), work_dir=str(tmp_path / "work"), kinds={"fake": fake},
                        log=lambda msg: None, **kw)

    build.calls, build.fail, build.work = calls, fail, tmp_path / "work"
    return build


def ran(make):
    return [name for name, _ in make.calls]


def test_runs_in_order_then_skips_done_steps(make):
    p = make()
    p.run()
    assert ran(make) == NAMES
    for name in NAMES:
        info = json.loads((make.work / name / DONE_FILE).read_text())
        assert info["step"] == name and info["outputs"]["model"].endswith("model")
        assert info["wall_time_s"] >= 0 and info["attempts"] == 1
    assert json.loads((make.work / "b" / DONE_FILE).read_text())["inputs"] == {
        "a": str(make.work / "a" / "model")}
    make.calls.clear()
    assert set(make().run().values()) == {"skipped (done)"}
    assert make.calls == []


def test_step_without_marker_is_resumed(make):
    make().run()
    os.remove(make.work / "c" / DONE_FILE)      # interrupted: folder, no marker
    make.calls.clear()
    p = make()
    assert p.state(p.step("c")) == "partial"
    result = p.run()
    assert make.calls == [("c", True)] and result["c"] == "resumed"
    assert (make.work / "c" / DONE_FILE).is_file()


def test_from_until_only_with_inputs(make):
    make().run(only="a")
    assert ran(make) == ["a"]
    make.calls.clear()
    make().run(from_="opt", until="c")
    assert ran(make) == ["opt", "c"]
    make.calls.clear()
    make().run(until="b")
    assert ran(make) == ["b"]                   # a is done
    make.calls.clear()
    make().run(from_="c")
    assert ran(make) == ["d"]                   # c is done
    with pytest.raises(PipelineError, match="--only cannot be combined"):
        make().run(only="a", from_="b")
    with pytest.raises(PipelineError, match="comes after"):
        make().run(from_="d", until="a")
    with pytest.raises(PipelineError, match="unknown step 'zz'"):
        make().run(only="zz")


def test_disabled_step_is_skipped(make, tiny_model_dir):
    make(options={"extra": False}).run()
    assert ran(make) == ["a", "b", "c", "d"]
    # named on its own, an off step is an error, not "skipped" and exit 0
    with pytest.raises(PipelineError, match=r"step 'opt' is off with these options \(when: extra\)"):
        make(options={"extra": False}).run(only="opt")
    with pytest.raises(PipelineError, match=r"--adopt opt: the step is off"):
        make(options={"extra": False}).adopt("opt", tiny_model_dir)
    with pytest.raises(PipelineError, match="unknown pipeline option"):
        make(options={"nope": 1})


def test_missing_input_names_the_step(make):
    with pytest.raises(PipelineError, match="step 'b' needs the model of step 'a'"):
        make().run(only="b")
    assert not (make.work / "b" / DONE_FILE).exists()


def test_dry_run_reports_states_without_running(make, capsys):
    make().run(until="b")
    os.makedirs(make.work / "c")
    make.calls.clear()
    p = make(options={"extra": False})
    states = p.run(dry_run=True)
    assert make.calls == []
    assert states == {"a": "done", "b": "done", "opt": "disabled", "c": "partial", "d": "todo"}
    out = capsys.readouterr().out
    assert "skip (done)" in out and "resume" in out and "-> run" in out and "skip (runs only when extra)" in out


def test_failing_step_leaves_no_marker_and_stops(make):
    make.fail.add("c")
    with pytest.raises(PipelineError) as e:
        make().run()
    assert "step 'c'" in str(e.value) and "boom" in str(e.value) and "resumes" in str(e.value)
    assert ran(make) == ["a", "b", "opt", "c"]  # d never started
    assert not (make.work / "c" / DONE_FILE).exists() and not (make.work / "d").exists()
    attempts = (make.work / "c" / "attempts.jsonl").read_text().splitlines()
    assert json.loads(attempts[-1])["outcome"] == "failed"
    make.fail.clear()
    make.calls.clear()
    make().run()
    assert make.calls == [("c", True), ("d", False)]
    assert json.loads((make.work / "c" / DONE_FILE).read_text())["attempts"] == 2


def test_cli_dry_run(tmp_path, capsys):
    from tfkosent.cli import main
    assert main(["pipeline", "default-model", "--work-dir", str(tmp_path / "w"), "--dry-run",
                 "--no-nli"]) == 0
    out = capsys.readouterr().out
    assert "convert" in out and "package" in out and "disabled" in out
    # the teacher caches the steps' overrides name are shown under --work-dir, as they run
    assert f"tasks.0.teacher_cache={tmp_path / 'w' / 'distill_probe'}" in out
    assert "runs/default_model" not in out
    from tfkosent.sentence_encoder import DEFAULT_MODEL_DIR
    assert f"step package writes the packaged model to {DEFAULT_MODEL_DIR} (the shipped model" in out
    assert not (tmp_path / "w").exists()
    assert main(["pipeline", "default-model", "--work-dir", str(tmp_path / "w"),
                 "--only", "nope", "--dry-run"]) == 2


def test_cli_dry_run_and_silver_stats_do_not_import_tensorflow(tmp_path):
    # they only read files and print: TensorFlow's import would be most of their run time
    import subprocess
    import sys
    silver = tmp_path / "silver.tsv"
    silver.write_text("sentence1\tsentence2\tscore\n가\t나\t1.0\n다\t라\t4.0\n", encoding="utf-8")
    for argv in (["pipeline", "default-model", "--work-dir", str(tmp_path / "w"), "--dry-run"],
                 ["silver-stats", str(silver)]):
        probe = ("import sys; from tfkosent.cli import main; rc = main(%r); "
                 "print('tensorflow' in sys.modules, rc)" % (argv,))
        run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
        assert run.stdout.splitlines()[-1] == "False 0", (argv, run.stdout[-500:], run.stderr[-500:])


def test_package_selects_on_korsts_dev_and_writes_float16(tmp_path, tiny_model_dir):
    """The real `package` step, on a tiny model and a hand-written evaluation."""
    import numpy as np
    from tfkosent.model_dir import load_model_dir
    from tfkosent.pipeline.default_model import KINDS

    spec = tmp_path / "pipeline.yaml"
    spec.write_text("options: {}\nsteps:\n"
                    "  - {name: s1, kind: given}\n  - {name: s2, kind: given}\n"
                    "  - {name: evaluate, kind: given_eval}\n"
                    "  - {name: package, kind: package, args: {candidates: [s1, s2], "
                    "evaluation: evaluate, teacher: s1}}\n", encoding="utf-8")
    scores = {"s1": {"korsts-dev": 70.0, "korsts-test": 99.0}, "s2": {"korsts-dev": 75.0,
                                                                       "korsts-test": 1.0}}

    def given(ctx):
        return {"model": tiny_model_dir}

    def given_eval(ctx):
        path = os.path.join(ctx.dir, "results.json")
        models = {n: {"model": tiny_model_dir, "results": {t: {"cosine_spearman": v}
                                                          for t, v in s.items()}}
                  for n, s in scores.items()}
        with open(path, "w") as f:
            json.dump({"tasks": ["korsts-dev", "korsts-test"], "models": models}, f)
        return {"results_json": path}

    out = tmp_path / "pkg"
    p = Pipeline(str(spec), work_dir=str(tmp_path / "w"), package_dir=str(out), log=lambda m: None,
                 kinds={"given": given, "given_eval": given_eval, "package": KINDS["package"]})
    p.run()
    files = load_model_dir(str(out))
    assert all(w.dtype == np.float16 for w in files.weights.values())
    meta = files.config.metadata["default_model"]
    assert meta["selected"] == "s2"                       # korsts-dev decides, never test
    assert meta["selection_scores"] == {"s1": 70.0, "s2": 75.0}
    assert [s["name"] for s in meta["steps"]] == ["s1", "s2", "evaluate"]
    assert meta["commands"] and meta["pipeline_sha256"]
    # provenance names no directory of the machine that built it: the work dir is $WORK_DIR
    assert str(tmp_path / "w") not in json.dumps(files.config.metadata)
    assert meta["steps"][0]["outputs"]["model"] == tiny_model_dir      # outside: kept as it is
    assert "--work-dir $WORK_DIR" in meta["commands"][0] and "$WORK_DIR" in meta["path_placeholders"]
    # the training data's terms travel with the weights (the base model's note named only MIT)
    assert "CC BY-SA 4.0" in files.config.metadata["licence_notes"]

    # a model that scores lower does not replace the packaged one, unless allowed
    scores["s2"]["korsts-dev"] = 60.0
    for name in ("evaluate", "package"):
        os.remove(tmp_path / "w" / name / DONE_FILE)
    with pytest.raises(PipelineError, match=r"s1 scores 70.00 on korsts-dev, under the 75.00 of the model"):
        p.run()
    assert load_model_dir(str(out)).config.metadata["default_model"]["selected"] == "s2"  # untouched
    leftover = tmp_path / ".pkg.tmp-killed"      # what a kill inside the write leaves
    leftover.mkdir()
    Pipeline(str(spec), work_dir=str(tmp_path / "w"), package_dir=str(out), log=lambda m: None,
             kinds={"given": given, "given_eval": given_eval, "package": KINDS["package"]},
             allow_worse_package=True).run()
    assert load_model_dir(str(out)).config.metadata["default_model"]["selected"] == "s1"
    assert not leftover.exists()


def test_portable_paths_rewrites_work_data_and_repo_dirs():
    from tfkosent.pipeline.default_model import _portable_paths
    work, data, repo = os.path.join("/r", "runs", "w"), "/d/data", "/r"
    value = {"model": "/r/runs/w/s1/model", "recipe": "/r/tfkosent/configs/a.yaml",
             "list": ["/d/data/korsts", "/r", "/r/runs/w", 3, None],
             "command": "tfkosent silver --bi-encoder /r/runs/w/t/model --data-dir /d/data",
             "elsewhere": "/rx/model", "adopted": "/tmp/other/model"}
    assert _portable_paths(value, work, data, repo) == {
        "model": "$WORK_DIR/s1/model", "recipe": "tfkosent/configs/a.yaml",
        "list": ["$DATA_DIR/korsts", ".", "$WORK_DIR", 3, None],
        "command": "tfkosent silver --bi-encoder $WORK_DIR/t/model --data-dir $DATA_DIR",
        "elsewhere": "/rx/model", "adopted": "/tmp/other/model"}
    assert _portable_paths("/r/x", work, None, repo) == "x"          # no data dir given


def test_prune_ffn_step_writes_a_narrower_model(tmp_path, tiny_model_dir, shared_data_dir):
    """The real `prune_ffn` step on a tiny model: by activations on STS-train sentences."""
    from tfkosent.model_dir import load_model_dir
    from tfkosent.pipeline.default_model import KINDS

    spec = tmp_path / "pipeline.yaml"
    spec.write_text("options: {}\nsteps:\n  - {name: s1, kind: given}\n"
                    "  - {name: pruned, kind: prune_ffn, args: {model: s1, intermediate_size: 8, "
                    "sources: [korsts-train], limit: 20}}\n", encoding="utf-8")
    p = Pipeline(str(spec), work_dir=str(tmp_path / "w"), data_dir=shared_data_dir, log=lambda m: None,
                 kinds={"given": lambda ctx: {"model": tiny_model_dir}, "prune_ffn": KINDS["prune_ffn"]})
    p.run()
    info = p.done_info("pruned")
    assert info["outputs"]["model"] == str(tmp_path / "w" / "pruned" / "model")
    files = load_model_dir(info["outputs"]["model"])
    assert files.config.encoder.intermediate_size == 8
    assert files.config.metadata["ffn_pruning"] == {"by": "activations", "sentences": 20,
                                                   "sources": ["korsts-train"]}
    assert files.config.metadata["pruned_model"] == tiny_model_dir


def test_real_pipeline_file_and_recipes_validate(tmp_path):
    from tfkosent.training import load_config

    options, steps, _ = load_spec(DEFAULT_PIPELINE)
    assert [s.name for s in steps] == [
        "convert", "teacher_nli", "teacher_sts", "teacher_sts2", "teacher_probe", "cross_encoder",
        "cross_encoder2", "silver", "silver2", "teacher_silver", "student_init", "distill", "distill_epoch2",
        "distill_epoch3", "distill_epoch4", "distill_epoch5", "distill_epoch6", "distill_probe",
        "student_prune", "distill_prune", "distill_prune2", "student_gold", "student_gold2", "student_sts",
        "student_sts2", "evaluate", "package"]
    # every recipe resolves under session 12's chain (probe_recipe=false), where each step a
    # recipe names is enabled; the probe steps are checked at the end
    p = Pipeline(work_dir=str(tmp_path / "w"), options={"probe_recipe": False})
    checked, skipped = [], []
    for step in p.steps:
        if step.kind != "train" or step.name.startswith("distill_prune"):   # below, with prune_ffn
            continue
        path = p.recipe_path(step)
        own = os.path.dirname(path) == os.path.dirname(DEFAULT_PIPELINE)
        if not os.path.isfile(path) and not own:
            skipped.append(step.name)                    # another change adds this recipe
            continue
        load_config(path)
        config = p.recipe_config(step, check=False)      # as the runner would run it
        assert config.output_dir == str(tmp_path / "w" / step.name)
        if config.model:
            assert config.model.startswith(str(tmp_path / "w"))
        checked.append(step.name)
    assert {"teacher_nli", "teacher_sts", "teacher_silver", "distill", "distill_epoch2",
            "distill_epoch3", "distill_epoch4", "distill_epoch5", "distill_epoch6", "student_gold",
            "student_gold2", "student_sts", "teacher_probe", "distill_probe",
            "cross_encoder",
            "cross_encoder2"} <= set(checked)
    for name in ("teacher_silver", "student_sts"):
        config = p.recipe_config(p.step(name), check=False)
        assert str(tmp_path / "w" / "silver" / "silver.tsv") in [d.path for d in config.tasks[0].data]
    # the defaults make the shipped model: the probe recipe (teacher_probe, distill_probe) and the
    # two-epoch cross-encoder's silver pairs
    assert options == {"nli": False, "teacher_silver": False, "teacher_epoch2": True, "cross_encoder": True,
                       "probe_recipe": True, "prune_ffn": True}
    default = Pipeline(work_dir=str(tmp_path / "w"))
    assert [s.name for s in default.steps if default.state(s) == "disabled"] == [
        "teacher_nli", "teacher_sts", "teacher_sts2", "teacher_silver", "distill", "distill_epoch2",
        "distill_epoch3", "distill_epoch4", "distill_epoch5", "distill_epoch6"]
    # --option probe_recipe=false: session 12's chain.  teacher_sts2 (teacher_sts.yaml again from
    # teacher_sts, new order, half the rate) teaches every distillation step and is packaged as the
    # teacher
    assert [s.name for s in p.steps if p.state(s) == "disabled"] == [
        "teacher_nli", "teacher_probe", "teacher_silver", "distill_probe", "student_prune", "distill_prune",
        "distill_prune2"]
    distill = p.recipe_config(p.step("distill"), check=False)
    assert distill.tasks[0].teacher == str(tmp_path / "w" / "teacher_sts2" / "model")
    distill_teacher, distill_sources = distill.tasks[0].teacher, distill.tasks[0].data
    assert p.resolve_ref(p.step("silver").args["scorer"]) == "cross_encoder2"
    assert p.resolve_ref(p.step("silver").args["bi_encoder"]) == "teacher_sts"
    # the labels: the mean of the cross-encoder and the bi-encoder teacher (silver.combine_scores)
    assert p.resolve_ref(p.step("silver").args["also_scored_by"]) == "teacher_sts"
    # cross_encoder2: the cross-encoder recipe again, from cross_encoder, new order, same rate
    ce, ce2 = (p.recipe_config(p.step(n), check=False) for n in ("cross_encoder", "cross_encoder2"))
    assert p.recipe_path(p.step("cross_encoder2")) == p.recipe_path(p.step("cross_encoder"))
    assert ce.model == str(tmp_path / "w" / "convert" / "model")
    assert ce2.model == str(tmp_path / "w" / "cross_encoder" / "model")
    assert ce2.model_type == "cross_encoder" and ce2.seed == 43
    assert ce2.optimizer.learning_rate == pytest.approx(ce.optimizer.learning_rate)
    # --option cross_encoder=false: neither cross-encoder step runs, teacher_sts labels by cosine
    cosine = Pipeline(work_dir=str(tmp_path / "w"), options={"cross_encoder": False, "probe_recipe": False})
    assert cosine.resolve_ref(cosine.step("silver").args["scorer"]) == "teacher_sts"
    assert cosine.state(cosine.step("cross_encoder2")) == "disabled"
    # ... and with the probe recipe (the default), its teacher does
    cosine = Pipeline(work_dir=str(tmp_path / "w"), options={"cross_encoder": False})
    assert cosine.resolve_ref(cosine.step("silver").args["scorer"]) == "teacher_probe"
    assert cosine.resolve_ref(cosine.step("silver").args["also_scored_by"]) == "teacher_probe"  # dropped: same step
    assert p.recipe_config(p.step("teacher_sts"), check=False).model == str(tmp_path / "w" / "convert" / "model")
    teacher2 = p.recipe_config(p.step("teacher_sts2"), check=False)
    assert p.recipe_path(p.step("teacher_sts2")) == p.recipe_path(p.step("teacher_sts"))
    assert teacher2.model == str(tmp_path / "w" / "teacher_sts" / "model")
    assert teacher2.seed == 43 and teacher2.optimizer.learning_rate == pytest.approx(1e-5)
    for name in ("distill", "distill_epoch2", "distill_epoch3", "distill_epoch4", "distill_epoch5",
                 "distill_epoch6"):
        assert p.recipe_config(p.step(name), check=False).tasks[0].teacher == \
            str(tmp_path / "w" / "teacher_sts2" / "model")
    for name in ("student_init", "package"):
        assert p.resolve_ref(p.step(name).args["teacher"]) == "teacher_sts2"
    # --option teacher_epoch2=false: the one-epoch teacher_sts teaches, teacher_sts2 does not run
    first = Pipeline(work_dir=str(tmp_path / "w"), options={"teacher_epoch2": False, "probe_recipe": False})
    assert first.recipe_config(first.step("distill"), check=False).tasks[0].teacher == \
        str(tmp_path / "w" / "teacher_sts" / "model")
    assert first.resolve_ref(first.step("package").args["teacher"]) == "teacher_sts"
    every = Pipeline(work_dir=str(tmp_path / "w"),
                     options={"teacher_silver": True, "cross_encoder": True, "nli": True,
                              "teacher_epoch2": True, "probe_recipe": False})
    distill = every.recipe_config(every.step("distill"), check=False)
    assert distill.tasks[0].teacher == str(tmp_path / "w" / "teacher_silver" / "model")
    assert every.resolve_ref(every.step("silver").args["scorer"]) == "cross_encoder2"
    assert every.recipe_config(every.step("teacher_sts"), check=False).model == \
        str(tmp_path / "w" / "teacher_nli" / "model")
    # epochs 2 to 6 are distill.yaml again (one list of sources), each from the previous epoch's
    # student, reading the distill step's teacher cache with the same teacher, in a new order at
    # half the rate; the students fine-tune the last one
    previous = "distill"
    for name, seed in (("distill_epoch2", 43), ("distill_epoch3", 44), ("distill_epoch4", 45),
                       ("distill_epoch5", 46), ("distill_epoch6", 47)):
        epoch = p.recipe_config(p.step(name), check=False)
        assert p.recipe_path(p.step(name)) == p.recipe_path(p.step("distill"))
        assert epoch.model == str(tmp_path / "w" / previous / "model")
        assert epoch.output_dir == str(tmp_path / "w" / name)
        assert epoch.seed == seed and epoch.optimizer.learning_rate == pytest.approx(1e-4)
        assert epoch.tasks[0].teacher == distill_teacher
        assert epoch.tasks[0].teacher_cache == str(tmp_path / "w" / "distill" / "teacher_cache" / "raw")
        assert [d.name for d in epoch.tasks[0].data] == [d.name for d in distill_sources]
        previous = name
    distill = p.recipe_config(p.step("distill"), check=False)
    assert distill.seed == 42 and distill.optimizer.learning_rate == pytest.approx(2e-4)
    assert distill.tasks[0].teacher_cache is None            # the default: its own folder
    gold = p.recipe_config(p.step("student_gold"), check=False)
    assert gold.model == str(tmp_path / "w" / "distill_epoch6" / "model")
    assert p.recipe_config(p.step("student_sts"), check=False).model == gold.model
    assert not any(d.path for d in gold.tasks[0].data)      # gold only: the without-silver run
    # the second CoSENT epoch: student_gold.yaml again, from student_gold, new order, lower rate
    gold2 = p.recipe_config(p.step("student_gold2"), check=False)
    assert p.recipe_path(p.step("student_gold2")) == p.recipe_path(p.step("student_gold"))
    assert gold2.model == str(tmp_path / "w" / "student_gold" / "model")
    assert gold2.output_dir == str(tmp_path / "w" / "student_gold2")
    assert gold2.seed == 43 and gold2.optimizer.learning_rate == pytest.approx(2e-5)
    assert [d.name for d in gold2.tasks[0].data] == [d.name for d in gold.tasks[0].data]
    package = p.step("package").args
    for name in ("student_gold2", "student_sts", "distill_epoch4", "distill_epoch5", "distill_epoch6"):
        assert name in package["candidates"] and name in p.step("evaluate").args["models"]
    assert "cross_encoder2" in p.step("evaluate").args["models"]
    # --option probe_recipe=true: the GPU probe's recipe in TensorFlow.  teacher_probe (CoSENT at
    # 3e-5, 2 of 4 scheduled epochs, uniform batches) replaces teacher_sts + teacher_sts2 everywhere,
    # distill_probe (one 10-epoch schedule stopped after 5, uniform batches) the six distill steps
    probe = Pipeline(work_dir=str(tmp_path / "w"), options={"probe_recipe": True, "prune_ffn": False})
    assert [s.name for s in probe.steps if probe.enabled(s)] == [
        "convert", "teacher_probe", "cross_encoder", "cross_encoder2", "silver", "silver2", "student_init",
        "distill_probe", "student_gold", "student_gold2", "student_sts", "student_sts2", "evaluate", "package"]
    teacher = probe.recipe_config(probe.step("teacher_probe"), check=False)
    assert teacher.model == str(tmp_path / "w" / "convert" / "model")
    assert (teacher.epochs, teacher.stop_at_step, teacher.bucket_batches) == (4, 1088, 1)
    assert teacher.optimizer.learning_rate == pytest.approx(3e-5)
    assert [d.name for d in teacher.tasks[0].data] == ["korsts-train", "klue-sts-train"]
    student = probe.recipe_config(probe.step("distill_probe"), check=False)
    assert student.model == str(tmp_path / "w" / "student_init" / "model")
    assert student.tasks[0].teacher == str(tmp_path / "w" / "teacher_probe" / "model")
    assert (student.epochs, student.stop_at_step, student.bucket_batches) == (10, 13000, 1)
    assert student.optimizer.learning_rate == pytest.approx(2e-4)
    assert [d.name for d in student.tasks[0].data] == [d.name for d in distill_sources]
    for name in ("silver", "student_init", "package"):
        key = "bi_encoder" if name == "silver" else "teacher"
        assert probe.resolve_ref(probe.step(name).args[key]) == "teacher_probe"
    for name in ("student_gold", "student_sts"):
        assert probe.recipe_config(probe.step(name), check=False).model == \
            str(tmp_path / "w" / "distill_probe" / "model")
    assert "distill_probe" in package["candidates"] and "teacher_probe" in p.step("evaluate").args["models"]
    # prune_ffn (the default since session 20): distill_probe's student cut to 1,024 FFN neurons by
    # activations, two distillation epochs at 1e-4 from distill_probe's teacher cache (the second in
    # a new order), and the students start from the second
    pruned = Pipeline(work_dir=str(tmp_path / "w"))
    assert [s.name for s in pruned.steps if pruned.enabled(s)] == [
        "convert", "teacher_probe", "cross_encoder", "cross_encoder2", "silver", "silver2", "student_init",
        "distill_probe", "student_prune", "distill_prune", "distill_prune2", "student_gold",
        "student_gold2", "student_sts", "student_sts2", "evaluate", "package"]
    prune_args = pruned.step("student_prune").args
    assert pruned.resolve_ref(prune_args["model"]) == "distill_probe"
    assert (prune_args["intermediate_size"], prune_args["by"]) == (1024, "activations")
    assert not {"korsts-dev", "korsts-test", "klue-sts-dev"} & set(prune_args["sources"])
    previous = "student_prune"
    for name, seed in (("distill_prune", 42), ("distill_prune2", 43)):
        recover = pruned.recipe_config(pruned.step(name), check=False)
        assert recover.model == str(tmp_path / "w" / previous / "model")
        assert recover.tasks[0].teacher == str(tmp_path / "w" / "teacher_probe" / "model")
        assert recover.tasks[0].teacher_cache == str(tmp_path / "w" / "distill_probe" / "teacher_cache" / "raw")
        assert (recover.epochs, recover.stop_at_step, recover.seed) == (1, None, seed)
        assert recover.optimizer.learning_rate == pytest.approx(1e-4)
        assert [d.name for d in recover.tasks[0].data] == [d.name for d in student.tasks[0].data]
        previous = name
    for name in ("student_gold", "student_sts"):
        assert pruned.recipe_config(pruned.step(name), check=False).model == \
            str(tmp_path / "w" / "distill_prune2" / "model")
    for name in ("distill_prune", "distill_prune2"):
        assert name in package["candidates"] and name in p.step("evaluate").args["models"]
    # pruning needs the probe recipe (distill_probe's teacher cache): session 12's chain ignores it
    chain = Pipeline(work_dir=str(tmp_path / "w"), options={"prune_ffn": True, "probe_recipe": False})
    assert chain.state(chain.step("student_prune")) == "disabled"
    assert chain.recipe_config(chain.step("student_sts"), check=False).model == \
        str(tmp_path / "w" / "distill_epoch6" / "model")
    # silver2: the silver step's labellers over a wider pool; student_sts2: student_sts.yaml again
    # from student_sts, on gold + silver2, new order, lower rate; packaged first if it is best
    for key in ("bi_encoder", "scorer", "also_scored_by"):
        assert pruned.resolve_ref(pruned.step("silver2").args[key]) == \
            pruned.resolve_ref(pruned.step("silver").args[key])
    wider = pruned.step("silver2").args["extra_args"]
    assert {"klue-nli-train", "parakqc"} <= set(wider) and not {"korsts-dev", "korsts-test",
                                                                 "klue-sts-dev"} & set(wider)
    second = pruned.recipe_config(pruned.step("student_sts2"), check=False)
    assert second.model == str(tmp_path / "w" / "student_sts" / "model")
    assert second.seed == 43 and second.optimizer.learning_rate == pytest.approx(2e-5)
    assert [d.path for d in second.tasks[0].data][2] == str(tmp_path / "w" / "silver2" / "silver.tsv")
    assert "silver2" in pruned.dependencies(pruned.step("student_sts2"))
    assert package["candidates"][0] == "student_sts2" and "student_sts2" in p.step("evaluate").args["models"]
    if skipped:
        pytest.skip(f"recipes of step(s) {skipped} are not in this checkout yet")


def test_adopt_marks_a_step_done_with_a_copied_model(make, tmp_path, tiny_model_dir):
    run = tmp_path / "earlier_run"
    import shutil
    shutil.copytree(tiny_model_dir, run / "model")
    (run / "summary.json").write_text(json.dumps({"steps": 7, "best_score": 12.5, "best_step": 5}))
    p = make()
    info = p.adopt("b", str(run))
    assert info["adopted"] and info["outputs"]["best_score"] == 12.5
    assert info["outputs"]["adopted_from"] == str(run / "model")
    assert (make.work / "b" / "model" / "config.json").is_file()
    assert (make.work / "b" / "adopted_summary.json").is_file()
    assert p.state(p.step("b")) == "done"
    p.run(until="b")
    assert ran(make) == ["a"]                              # b is skipped: adopted
    with pytest.raises(PipelineError, match="already done"):
        p.adopt("b", str(run))
    with pytest.raises(PipelineError, match="no config.json"):
        p.adopt("c", str(tmp_path))


def test_cli_options_and_adopt_parse(tmp_path, capsys, tiny_model_dir):
    from tfkosent.cli import main
    from tfkosent.pipeline.default_model import parse_options

    assert parse_options(["teacher_silver=false", "nli=TRUE"]) == {"teacher_silver": False, "nli": True}
    with pytest.raises(PipelineError, match="NAME=true"):
        parse_options(["teacher_silver"])
    work = tmp_path / "w"
    assert main(["pipeline", "default-model", "--work-dir", str(work), "--option", "bogus=true",
                 "--dry-run"]) == 2
    assert "unknown pipeline option" in capsys.readouterr().err
    assert main(["pipeline", "default-model", "--work-dir", str(work), "--option", "teacher_silver=false",
                 "--adopt", f"convert={tiny_model_dir}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would adopt" in out and "skip (runs only when teacher_silver)" in out
    assert not (work / "convert" / DONE_FILE).exists()        # a dry run changes nothing


def test_step_overrides_change_the_recipe_and_are_checked(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: runs/default_model/a/model\noutput_dir: runs/default_model/r\n"
                      "tasks:\n  - {loss: distill_mse, teacher: /t, data: [korsts-train]}\n", encoding="utf-8")
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("""
recipe_work_dir: runs/default_model
steps:
  - {name: a, kind: train, args: {recipe: r.yaml}}
  - name: b
    kind: train
    args: {recipe: r.yaml, model: a, overrides: {seed: 5, tasks.0.teacher_cache: runs/default_model/a/cache}}
  - {name: c, kind: train, args: {recipe: r.yaml, overrides: {output_dir: elsewhere}}}
  - {name: d, kind: train, args: {recipe: r.yaml, overrides: {tasks.2.batch_size: 4}}}
""", encoding="utf-8")
    p = Pipeline(str(spec), work_dir=str(tmp_path / "w"))
    a, b = (p.recipe_config(p.step(n), check=False) for n in "ab")
    assert a.seed == 42 and a.tasks[0].teacher_cache is None
    assert b.seed == 5 and b.tasks[0].teacher_cache == str(tmp_path / "w" / "a" / "cache")  # rebased
    assert b.model == str(tmp_path / "w" / "a" / "model") and b.output_dir == str(tmp_path / "w" / "b")
    # the plan shows the overrides as the step runs them: rebased onto the work dir
    assert (f"r.yaml --set seed=5 --set tasks.0.teacher_cache={tmp_path / 'w' / 'a' / 'cache'}"
            in p.format_plan(p.steps))
    with pytest.raises(PipelineError, match=r"step 'c': overrides may not set \['output_dir'\]"):
        p.recipe_config(p.step("c"), check=False)
    with pytest.raises(Exception, match=r"pipeline step d.*tasks.2: the list has 1 item"):
        p.recipe_config(p.step("d"), check=False)


def test_continuing_from_an_adopted_step_evaluates_and_packages_what_ran(tmp_path, tiny_model_dir,
                                                                         shared_data_dir):
    """--adopt a later step, run only what follows: the real `evaluate` scores the steps that are
    done and lists the others; `package` chooses among the candidates that ran, records the rest,
    and refuses once a left-out candidate is done (the evaluation is then stale)."""
    from tfkosent.pipeline.default_model import KINDS

    spec = tmp_path / "pipeline.yaml"
    spec.write_text(
        "options: {}\nsteps:\n"
        "  - {name: early, kind: given}\n  - {name: late, kind: given}\n  - {name: after, kind: given}\n"
        "  - {name: evaluate, kind: evaluate, args: {models: [early, late, after], tasks: [korsts-dev], "
        "limit: 24}}\n"
        "  - {name: package, kind: package, args: {candidates: [after, late, early], "
        "evaluation: evaluate}}\n", encoding="utf-8")
    logged = []

    def given(ctx):
        return {"model": tiny_model_dir}

    def build():
        return Pipeline(str(spec), work_dir=str(tmp_path / "w"), package_dir=str(tmp_path / "pkg"),
                        data_dir=shared_data_dir, log=logged.append,
                        kinds={"given": given, "evaluate": KINDS["evaluate"], "package": KINDS["package"]})

    p = build()
    with pytest.raises(PipelineError, match="none of .* is done; nothing to evaluate"):
        p.run(only="evaluate")
    p.adopt("late", tiny_model_dir)
    p.run(only="after")
    p.run(only="evaluate")
    results = json.loads((tmp_path / "w" / "evaluate" / "results.json").read_text())
    assert sorted(results["models"]) == ["after", "late"] and results["not_done"] == ["early"]
    assert any("'early' is not done, not evaluated" in m for m in logged)
    p.run(only="package")
    meta = json.loads((tmp_path / "pkg" / "config.json").read_text())["metadata"]["default_model"]
    assert meta["candidates_not_run"] == ["early"]
    assert sorted(meta["selection_scores"]) == ["after", "late"]
    assert meta["selected"] in ("after", "late")
    late = next(s for s in meta["steps"] if s["name"] == "late")
    assert late["adopted_from"] == tiny_model_dir and "adopted_provenance" not in late  # a plain model
    # a package adopted in a new run (the previous default model) keeps its own run's record
    again = Pipeline(str(spec), work_dir=str(tmp_path / "w2"), package_dir=str(tmp_path / "pkg2"),
                     data_dir=shared_data_dir, log=logged.append,
                     kinds={"given": given, "evaluate": KINDS["evaluate"], "package": KINDS["package"]})
    again.adopt("late", str(tmp_path / "pkg"))
    again.run(only="evaluate")
    again.run(only="package")
    meta2 = json.loads((tmp_path / "pkg2" / "config.json").read_text())["metadata"]["default_model"]
    assert meta2["selected"] == "late" and meta2["candidates_not_run"] == ["after", "early"]
    (late2,) = [s for s in meta2["steps"] if s["name"] == "late"]
    assert late2["adopted_provenance"]["selection_scores"] == meta["selection_scores"]
    p.run(only="early")                      # done after the evaluation: the table is stale
    os.remove(tmp_path / "w" / "package" / DONE_FILE)
    # DONE times have one-second resolution: in the evaluation's second, early is not "after"
    # it, and the candidate missing from the table is refused by name ...
    evaluated_at = json.loads((tmp_path / "w" / "evaluate" / DONE_FILE).read_text())["finished_at"]
    _set_finished_at(tmp_path / "w", "early", evaluated_at)
    with pytest.raises(PipelineError, match=r"\['early'\] are done but not in the evaluation"):
        build().run(only="package")
    # ... and done later, the whole table is stale
    _set_finished_at(tmp_path / "w", "early", "2099-01-01T00:00:00Z")
    with pytest.raises(PipelineError, match=r"the evaluation step 'evaluate' is stale \(step 'early', "
                                            r"which it reads from, was done again after it\)"):
        build().run(only="package")


def _set_finished_at(work, name, when):
    path = work / name / DONE_FILE
    info = json.loads(path.read_text())
    info["finished_at"] = when
    path.write_text(json.dumps(info))


def test_a_done_step_whose_recipe_changed_is_stale_and_redone_only_when_asked(make, tmp_path, capsys):
    make().run()
    # the pipeline file changes b's arguments (say, a newer model to start from)
    (tmp_path / "pipeline.yaml").write_text(SPEC.replace("args: {model: a}", "args: {model: a, lr: 2}"),
                                            encoding="utf-8")
    p = make()
    assert p.stale_reason(p.step("b")) == "its arguments in the pipeline file changed since it ran (lr)"
    assert p.stale_reason(p.step("a")) is None and p.stale_reason(p.step("c")) is None
    make.calls.clear()
    p.run(dry_run=True)
    assert "b                fake             stale     -> stop: its arguments" in capsys.readouterr().out
    with pytest.raises(PipelineError, match=r"step 'b' is done but stale: .*--rerun-stale"):
        p.run()
    assert make.calls == [] and (make.work / "b" / DONE_FILE).is_file()   # nothing touched
    p.run(rerun_stale=True)
    assert ran(make) == ["b"]
    aside = [d for d in os.listdir(make.work) if d.startswith("b.replaced-")]
    assert len(aside) == 1 and (make.work / aside[0] / DONE_FILE).is_file()   # kept, not deleted
    assert json.loads((make.work / "b" / DONE_FILE).read_text())["args"] == {"model": "a", "lr": 2}
    assert make().stale_reason(make().step("b")) is None


def test_a_done_step_whose_recipe_file_was_edited_is_stale(tmp_path):
    (tmp_path / "r.yaml").write_text("seed: 1\n", encoding="utf-8")
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("options: {}\nsteps:\n  - {name: t, kind: fake, args: {recipe: r.yaml}}\n",
                    encoding="utf-8")

    def build():
        return Pipeline(str(spec), work_dir=str(tmp_path / "w"), log=lambda m: None,
                        kinds={"fake": lambda ctx: {}})
    build().run()
    assert build().stale_reason(build().step("t")) is None
    (tmp_path / "r.yaml").write_text("seed: 2\n", encoding="utf-8")   # the same arguments, another recipe
    assert build().stale_reason(build().step("t")) == f"its recipe {tmp_path / 'r.yaml'} changed since it ran"


def test_a_partial_step_whose_input_was_redone_is_not_resumed(tmp_path):
    """A train step killed midway keeps its checkpoints; if the step it starts from is redone
    meanwhile, resuming would continue the old start model's run: refused, or restarted with
    --rerun-stale."""
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("options: {}\nsteps:\n  - {name: a, kind: train}\n"
                    "  - {name: b, kind: train, args: {model: a}}\n", encoding="utf-8")
    fail = {"b"}

    def fake(ctx):
        if "model" in ctx.args:
            ctx.model_of(ctx.args["model"])
        if ctx.step.name in fail:
            raise RuntimeError("killed")
        os.makedirs(os.path.join(ctx.dir, "model"), exist_ok=True)
        return {"model": os.path.join(ctx.dir, "model")}

    def build():
        return Pipeline(str(spec), work_dir=str(tmp_path / "w"), kinds={"train": fake}, log=lambda m: None)

    with pytest.raises(PipelineError, match="step 'b' .* failed"):
        build().run()
    _set_finished_at(tmp_path / "w", "a", "2030-01-01T00:00:00Z")      # a redone since b started
    fail.clear()
    with pytest.raises(PipelineError, match=r"step 'b' was started but not finished, and step\(s\) a, "
                                            r"which it reads from, were done again since it started"):
        build().run(only="b")
    assert build().run(only="b", rerun_stale=True) == {"b": "ran"}
    assert any(d.startswith("b.replaced-") for d in os.listdir(tmp_path / "w"))


def test_a_copied_work_directory_reads_its_own_models(make, tmp_path):
    """DONE.json records absolute paths: a work directory copied elsewhere (another machine,
    `cp -r`) reads the models under itself, and a missing one is named as missing, not as a
    step that is not done."""
    import shutil
    make().run()
    moved = tmp_path / "moved"
    shutil.copytree(make.work, moved)
    shutil.rmtree(make.work)
    p = Pipeline(str(tmp_path / "pipeline.yaml"), work_dir=str(moved), kinds={"fake": lambda c: {}},
                 log=lambda m: None)
    assert p.model_of("a") == str(moved / "a" / "model")
    shutil.rmtree(moved / "a" / "model")
    with pytest.raises(PipelineError, match=r"its DONE.json says .* which does not exist"):
        p.model_of("a", needed_by="b")
    (moved / "c" / DONE_FILE).write_text("")
    with pytest.raises(PipelineError, match=r"c/DONE.json: not valid JSON"):
        p.done_info("c")


def test_a_step_is_stale_when_what_it_reads_was_redone_after_it(make):
    make().run()
    _set_finished_at(make.work, "b", "2026-01-01T00:00:00Z")
    _set_finished_at(make.work, "a", "2026-01-01T00:00:01Z")    # a was done again after b
    p = make()
    assert p.stale_reason(p.step("b")) == "step 'a', which it reads from, was done again after it"
    assert p.stale_reason(p.step("c")) is None                  # c does not read a
    make.calls.clear()
    p.run(rerun_stale=True)
    assert ran(make) == ["b"]
    # an adopted step was trained elsewhere: its inputs' times here say nothing about it
    info = json.loads((make.work / "b" / DONE_FILE).read_text())
    info.update(adopted=True, finished_at="2020-01-01T00:00:00Z")
    (make.work / "b" / DONE_FILE).write_text(json.dumps(info))
    assert make().stale_reason(make().step("b")) is None


def _reading_pipeline(tmp_path, last_step: str):
    """Steps a, opt (when: extra) and `last_step`, whose fake steps read every reference
    argument they have; returns build(**options) -> Pipeline."""
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("options: {extra: true}\nsteps:\n  - {name: a, kind: train}\n"
                    "  - {name: opt, kind: train, when: extra}\n" + last_step, encoding="utf-8")

    def fake(ctx):
        for key in ("model", "bi_encoder", "scorer"):
            if key in ctx.args:
                ctx.model_of(ctx.args[key])
        os.makedirs(os.path.join(ctx.dir, "model"), exist_ok=True)
        return {"model": os.path.join(ctx.dir, "model")}

    def build(**options):
        return Pipeline(str(spec), work_dir=str(tmp_path / "w"), kinds={"train": fake, "silver": fake},
                        log=lambda msg: None, options=options or None)
    return build


def test_a_step_is_stale_when_an_option_changes_the_step_it_reads(tmp_path):
    build = _reading_pipeline(tmp_path, "  - {name: b, kind: train, args: {model: [opt, a]}}\n")
    build().run()
    assert build().stale_reason(build().step("b")) is None
    off = build(extra=False)
    assert off.stale_reason(off.step("b")) == "its model is step 'a' now, it ran with 'opt' (the options changed)"


def test_a_reference_that_moves_to_a_step_read_anyway_is_stale(tmp_path):
    """silver reads teacher_probe as its bi-encoder and [cross_encoder2, teacher_probe] as its
    scorer: with cross_encoder off the scorer becomes teacher_probe, a step it read already."""
    build = _reading_pipeline(tmp_path, "  - {name: s, kind: silver, args: {bi_encoder: a, scorer: [opt, a]}}\n")
    build().run()
    off = build(extra=False)
    assert off.stale_reason(off.step("s")) == "its scorer is step 'a' now, it ran with 'opt' (the options changed)"


def test_evaluate_reuses_a_per_model_result_only_for_the_same_model(tmp_path):
    from tfkosent.pipeline.default_model import _per_model_result_current

    path = tmp_path / "student.json"
    path.write_text(json.dumps({"tasks": ["korsts-dev"], "model_finished_at": "2026-12-03T10:00:00Z"}))
    assert _per_model_result_current(str(path), ["korsts-dev"], "2026-12-03T10:00:00Z")
    assert not _per_model_result_current(str(path), ["korsts-dev"], "2026-12-03T11:00:00Z")  # redone
    assert not _per_model_result_current(str(path), ["korsts-test"], "2026-12-03T10:00:00Z")
    # results written before the field existed: current when written after the model was done
    path.write_text(json.dumps({"tasks": ["korsts-dev"]}))
    os.utime(path, (1_700_000_000, 1_700_000_000))           # 2023-11-14
    assert not _per_model_result_current(str(path), ["korsts-dev"], "2026-12-03T10:00:00Z")
    assert _per_model_result_current(str(path), ["korsts-dev"], "2023-11-14T00:00:00Z")
    # a result computed on the first N pairs (a smoke run's `limit`) is not the full table's
    path.write_text(json.dumps({"tasks": ["korsts-dev"], "limit": 24,
                                "model_finished_at": "2026-12-03T10:00:00Z"}))
    assert not _per_model_result_current(str(path), ["korsts-dev"], "2026-12-03T10:00:00Z")
    assert _per_model_result_current(str(path), ["korsts-dev"], "2026-12-03T10:00:00Z", limit=24)


def test_dry_run_shows_what_a_redone_step_makes_stale_downstream(make, tmp_path, capsys):
    make().run()
    (tmp_path / "pipeline.yaml").write_text(SPEC.replace("- {name: a, kind: fake}",
                                                         "- {name: a, kind: fake, args: {lr: 2}}"),
                                            encoding="utf-8")
    make().run(dry_run=True, rerun_stale=True)
    out = capsys.readouterr().out
    assert "a                fake             stale     -> set aside and rerun (its arguments" in out
    assert "b                fake             stale     -> set aside and rerun (step 'a', which it reads from, runs before it)" in out
    assert "c                fake             done      -> skip (done)" in out


def test_when_takes_not_and_lists_of_conditions(tmp_path):
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("options: {new: false, extra: true}\n"
                    "steps:\n"
                    "  - {name: old, kind: fake, when: not new}\n"
                    "  - {name: new_only, kind: fake, when: new}\n"
                    "  - {name: both, kind: fake, when: [extra, not new]}\n", encoding="utf-8")
    kinds = {"fake": lambda ctx: {}}

    def enabled(**options):
        p = Pipeline(str(spec), work_dir=str(tmp_path / "w"), options=options, kinds=kinds)
        return [s.name for s in p.steps if p.enabled(s)]

    assert enabled() == ["old", "both"]
    assert enabled(new=True) == ["new_only"]
    assert enabled(extra=False) == ["old"]
    p = Pipeline(str(spec), work_dir=str(tmp_path / "w"), options={"new": True}, kinds=kinds)
    assert p.step("both").when_text() == "extra and not new"
    assert "skip (runs only when extra and not new)" in p.format_plan(p.steps)


@pytest.mark.parametrize("when, message", [("not bogus", "'bogus' is not an option"),
                                           ("[new, bogus]", "'bogus' is not an option"),
                                           ("[]", "must be an option name"),
                                           ("{a: 1}", "must be an option name")])
def test_when_names_only_known_options(tmp_path, when, message):
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(f"options: {{new: false}}\nsteps:\n  - {{name: s, kind: fake, when: {when}}}\n",
                    encoding="utf-8")
    with pytest.raises(PipelineError, match=message) as err:
        load_spec(str(spec))
    assert "steps[0] (s)" in str(err.value)


def test_an_alternative_behind_an_option_that_is_off_leaves_done_steps_current(make, tmp_path):
    old = SPEC.replace("options: {extra: true}", "options: {extra: true, new: false}")
    old = old.replace("args: {model: a}}", "args: {model: a, also: [a, opt]}}")
    (tmp_path / "pipeline.yaml").write_text(old, encoding="utf-8")
    make().run()
    # the file gains a step behind an option that is off, offered first in b's lists
    new = old.replace("  - {name: b, kind: fake, args: {model: a, also: [a, opt]}}",
                      "  - {name: a2, kind: fake, when: new}\n"
                      "  - {name: b, kind: fake, args: {model: [a2, a], also: [a2, a, opt]}}")
    assert new != old
    (tmp_path / "pipeline.yaml").write_text(new, encoding="utf-8")
    p = make()
    assert p.stale_reason(p.step("b")) is None
    # turned on, the option makes b read a2: stale
    p = Pipeline(str(tmp_path / "pipeline.yaml"), work_dir=str(make.work), options={"new": True},
                 kinds=p.kinds)
    assert p.stale_reason(p.step("b")) == ("its arguments in the pipeline file changed since it ran "
                                           "(also, model)")


def test_cli_sigterm_in_a_step_outside_a_training_loop_exits_with_the_resume_hint(tmp_path, monkeypatch,
                                                                                    capsys):
    """SIGTERM while a step prepares data or writes outputs (no training loop to catch it): the
    step is recorded as interrupted, no DONE marker, exit 128 + 15, not an instant death."""
    import argparse
    import signal
    import time

    from tfkosent.pipeline import default_model

    spec = tmp_path / "pipeline.yaml"
    spec.write_text(SPEC, encoding="utf-8")

    def terminated(ctx):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the step")

    def not_handled(signum, frame):
        raise AssertionError("the pipeline let SIGTERM through (it would kill the process)")

    monkeypatch.setitem(default_model.KINDS, "fake", terminated)
    args = argparse.Namespace(pipeline=str(spec), work_dir=str(tmp_path / "w"), data_dir=None, option=[],
                              no_nli=False, package_dir=None, from_step=None, until=None, only=None,
                              adopt=[], dry_run=False, rerun_stale=False)
    before = signal.signal(signal.SIGTERM, not_handled)
    try:
        assert default_model.main_cli(args) == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, before)
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == ("tfkosent pipeline: stopped by SIGTERM; run the same "
                                            "command again to resume")
    assert not (tmp_path / "w" / "a" / DONE_FILE).exists()
    attempts = (tmp_path / "w" / "a" / "attempts.jsonl").read_text().splitlines()
    assert json.loads(attempts[-1])["outcome"] == "interrupted"


def test_cli_dry_run_refuses_what_the_run_refuses(tmp_path, capsys):
    """A nonexistent --adopt path, a --work-dir that is a file: --dry-run gives the run's error."""
    from tfkosent.cli import main
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [(["--work-dir", str(tmp_path / "w"), "--adopt", f"student_gold={tmp_path / 'nonexist'}"],
              f"--adopt student_gold={tmp_path / 'nonexist'}: no such file or directory"),
             (["--work-dir", str(afile)], f"--work-dir) {afile} is a file, not a directory")]
    for argv, message in cases:
        errors = []
        for dry_run in (["--dry-run"], []):
            assert main(["pipeline", "default-model"] + argv + dry_run) == 2
            errors.append(capsys.readouterr().err)
        assert errors[0] == errors[1] and message in errors[0], errors
    assert not (tmp_path / "w").exists()
