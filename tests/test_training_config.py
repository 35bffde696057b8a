"""Recipe schema (tfkosent.training.config): shipped recipes parse, bad ones fail clearly."""

import glob
import json
import os
import textwrap

import pytest

from tfkosent.training.config import (RecipeError, TrainConfig, format_key_path, load_config,
                                      parse_config)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(glob.glob(os.path.join(REPO, "tfkosent", "configs", "*.yaml")))
# every recipe in the repository: the ablations and the default model's steps too (not pipeline.yaml)
ALL_RECIPES = SHIPPED + sorted(p for p in glob.glob(os.path.join(REPO, "tfkosent", "configs", "*", "*.yaml"))
                               if os.path.basename(p) != "pipeline.yaml")

MINIMAL = """\
model: /models/tiny
output_dir: /runs/tiny
tasks:
  - loss: cosent
    data: [korsts-train]
"""


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def error_of(tmp_path, text, name="recipe.yaml"):
    path = write(tmp_path, text, name)
    with pytest.raises(RecipeError) as info:
        load_config(path)
    return str(info.value), path


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: os.path.relpath(p, REPO))
def test_shipped_recipes_parse(path):
    config = load_config(path)
    assert isinstance(config, TrainConfig) and config.tasks
    assert config.eval is None or config.eval.dataset.name == "korsts-dev"


def test_expected_recipes_are_shipped():
    names = {os.path.basename(p) for p in SHIPPED}
    assert {"cosent_e5_korsts.yaml", "simcse_nli.yaml", "distill_student.yaml"} <= names
    cosent = load_config(os.path.join(REPO, "tfkosent", "configs", "cosent_e5_korsts.yaml"))
    (task,) = cosent.tasks
    assert (task.loss.type, task.batch_size, cosent.epochs) == ("cosent", 32, 1)
    assert [s.name for s in task.data] == ["korsts-train", "klue-sts-train"]
    assert cosent.optimizer.learning_rate == 2e-5 and cosent.eval.dataset.name == "korsts-dev"


def test_defaults_and_shorthands(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    (task,) = config.tasks
    assert task.name == "cosent" and task.loss.params == {}
    assert task.data[0].name == "korsts-train" and task.data[0].path is None
    assert config.eval.dataset.name == "korsts-dev" and config.strategy == "auto"
    json.dumps(config.to_dict())  # JSON-serializable (recipe.json)


def test_json_recipe_and_file_sources(tmp_path):
    recipe = {"model": "/m", "output_dir": "/o", "schedule": "round_robin", "epochs": 2,
              "tasks": [{"loss": {"type": "simcse_supervised", "temperature": 0.1},
                         "data": ["klue-nli-train", {"path": "extra.tsv", "format": "triplets"}]},
                        {"loss": "cosent", "data": ["my/sts.tsv"]},
                        {"loss": "cosent", "data": ["korsts-train"]}]}
    config = load_config(write(tmp_path, json.dumps(recipe, indent=1), "recipe.json"))
    assert [t.name for t in config.tasks] == ["simcse_supervised", "cosent", "cosent_2"]
    assert config.tasks[0].loss.params == {"temperature": 0.1}
    assert config.tasks[0].data[1].format == "triplets"
    assert config.tasks[1].data[0].path == "my/sts.tsv"


def test_unknown_key_names_key_path_file_and_line(tmp_path):
    message, path = error_of(tmp_path, MINIMAL + "optimizer:\n  lerning_rate: 0.1\n")
    assert message.startswith(f"{path}:7: optimizer.lerning_rate: unknown key 'lerning_rate'")
    assert "learning_rate" in message  # the known keys are listed
    message, _ = error_of(tmp_path, MINIMAL.replace("loss: cosent", "loss: {type: cosent, scael: 20}"))
    assert ":4: tasks[0].loss.scael: unknown key 'scael'" in message
    message, _ = error_of(tmp_path, MINIMAL + "epocs: 2\n")
    assert ":6: epocs: unknown key" in message


def test_wrong_type_names_field_and_expected_type(tmp_path):
    message, path = error_of(tmp_path, MINIMAL + "    batch_size: '32'\n")
    assert message == f"{path}:6: tasks[0].batch_size: expected int, got str ('32')"
    message, _ = error_of(tmp_path, MINIMAL + "optimizer: {learning_rate: fast}\n")
    assert "optimizer.learning_rate: expected float, got str ('fast')" in message


def test_exponent_floats_that_yaml_reads_as_strings(tmp_path):
    """PyYAML (YAML 1.1) reads 2e-5 as a string; a float field takes it like --set does."""
    config = load_config(write(tmp_path, MINIMAL + "optimizer: {learning_rate: 2e-5, weight_decay: 1E-2}\n"))
    assert config.optimizer.learning_rate == 2e-5 and config.optimizer.weight_decay == 0.01
    message, _ = error_of(tmp_path, MINIMAL + "    batch_size: 3e1\n")
    assert "tasks[0].batch_size: expected int, got str ('3e1')" in message
    message, _ = error_of(tmp_path, MINIMAL + "deterministic: 1\n")
    assert "deterministic: expected bool, got int" in message
    message, _ = error_of(tmp_path, MINIMAL.replace("[korsts-train]", "korsts-train"))
    assert "tasks[0].data: expected list of mapping, got str" in message
    message, _ = error_of(tmp_path, MINIMAL + "strategy: gpu\n")
    assert "strategy: expected one of 'auto', 'mirrored', 'tpu', 'default', got 'gpu'" in message


def test_dev_files_whose_names_merely_contain_test_are_accepted(tmp_path):
    for name in ("my_dev_latest.tsv", "contest_pairs.tsv"):
        config = load_config(write(tmp_path, MINIMAL + f"eval: {{dataset: {{path: {name}}}}}\n"))
        assert config.eval.dataset.path.endswith(name)


def test_semantic_errors(tmp_path):
    cases = {
        MINIMAL.replace("loss: cosent", "loss: cosnet"): "tasks[0].loss.type: unknown loss 'cosnet'",
        MINIMAL.replace("korsts-train", "korsts-trian.tsv") + "eval: {dataset: korsts-test}\n":
            "eval.dataset: 'korsts-test' is a reported evaluation set",
        MINIMAL + "eval: {dataset: klue-sts-dev}\n": "eval.dataset: 'klue-sts-dev' is a reported evaluation set",
        MINIMAL + "eval: {dataset: {path: data/sts-test.tsv}}\n": "eval.dataset: 'data/sts-test.tsv' looks like a test set",
        MINIMAL + "    epochs: 2\nschedule: round_robin\n": "tasks[0].epochs: only applies to schedule: sequential",
        MINIMAL + "    batch_size: 0\n": "tasks[0].batch_size: must be positive, got 0",
        MINIMAL.replace("loss: cosent", "loss: distill_mse"): "tasks[0].teacher: loss 'distill_mse' needs a teacher",
        MINIMAL.replace("loss: cosent", "loss: {type: distill_cosine, cosine_weight: -1}")
        + "    teacher: /t\n": "tasks[0].loss.cosine_weight: must be >= 0, got -1",
        MINIMAL.replace("loss: cosent", "loss: {type: distill_cosine, cosine_weight: 0, similarity_weight: 0}")
        + "    teacher: /t\n": "tasks[0].loss: cosine_weight, similarity_weight and mse_weight are all 0",
        MINIMAL.replace("model: /models/tiny\n", ""): "<top>: give exactly one of 'model'",
        MINIMAL.replace("tasks:", "tasks: []\nx:").split("x:")[0]: "tasks: needs at least one task",
        MINIMAL + "student: {teacher: /t, num_layers: 1}\n": "<top>: give exactly one of 'model'",
        MINIMAL.replace("[korsts-train]", "[{name: korsts-train, path: a.tsv}]"):
            "tasks[0].data[0]: give exactly one of 'name'",
        MINIMAL.replace("[korsts-train]", "[{name: korsts-tain}]"): "tasks[0].data[0].name: unknown dataset",
        MINIMAL.replace("[korsts-train]", "[korsts-train, korsts-dev]"):
            "tasks[0].data[1]: 'korsts-dev' is an evaluation set; keep it out of training",
        MINIMAL + "length_chunks: 0\n": "length_chunks: must be positive, got 0",
        MINIMAL + "length_chunks: 8\nstrategy: tpu\n": "length_chunks: needs run-time shapes",
        MINIMAL.replace("loss: cosent", "loss: cross_bce") + "model_type: cross_encoder\nlength_chunks: 4\n":
            "length_chunks: only applies to bi-encoder embeddings",
        MINIMAL.replace("loss: cosent", "loss: distill_hidden") + "    teacher: /t\nlength_chunks: 4\n":
            "tasks[0].loss: loss 'distill_hidden' compares token states",
        # loss parameters that would divide by zero, or train away from the labels
        MINIMAL.replace("loss: cosent", "loss: {type: simcse_unsupervised, temperature: 0}"):
            "tasks[0].loss.temperature: must be positive, got 0",
        MINIMAL.replace("loss: cosent", "loss: {type: cosent, scale: -20}"):
            "tasks[0].loss.scale: must be positive, got -20",
        MINIMAL.replace("loss: cosent", "loss: {type: cosine_mse, max_score: 0}"):
            "tasks[0].loss.max_score: must be positive, got 0",
        MINIMAL.replace("loss: cosent", "loss: {type: multiple_negatives_ranking, scale: 0}"):
            "tasks[0].loss.scale: must be positive, got 0",
        MINIMAL.replace("loss: cosent", "loss: {type: angle, cosine_weight: -1}"):
            "tasks[0].loss.cosine_weight: must be >= 0, got -1",
    }
    for text, expected in cases.items():
        message, _ = error_of(tmp_path, text)
        assert expected in message, (expected, message)


def test_steps_per_loop_is_a_positive_int(tmp_path):
    assert load_config(write(tmp_path, MINIMAL)).steps_per_loop == 1
    assert load_config(write(tmp_path, MINIMAL + "steps_per_loop: 8\n")).steps_per_loop == 8
    for value, expected in (("0", "steps_per_loop: must be positive, got 0"),
                            ("-1", "steps_per_loop: must be positive, got -1"),
                            ("x", "steps_per_loop: expected int, got str ('x')"),
                            ("2.5", "steps_per_loop: expected int, got float (2.5)")):
        message, _ = error_of(tmp_path, MINIMAL + f"steps_per_loop: {value}\n")
        assert f"recipe.yaml:6: {expected}" in message, message


def test_missing_required_and_bad_yaml(tmp_path):
    message, _ = error_of(tmp_path, "model: /m\ntasks: []\n")
    assert "missing required key 'output_dir'" in message
    message, path = error_of(tmp_path, "model: /m\n  output_dir: [\n")
    assert message.startswith(f"{path}:") and "not valid YAML" in message
    message, _ = error_of(tmp_path, MINIMAL + "seed: 1\nseed: 2\n")
    assert ":7: seed: duplicate key" in message
    message, path = error_of(tmp_path, '{"model": 1,', "recipe.json")
    assert "not valid JSON" in message
    with pytest.raises(FileNotFoundError, match="no such recipe file"):
        load_config(str(tmp_path / "missing.yaml"))


def test_student_teacher_defaults_for_distillation():
    config = parse_config({"student": {"teacher": "/t", "layers": [3, 7, 11]}, "output_dir": "/o",
                           "tasks": [{"loss": "distill_mse", "data": ["3i4k"]}]})
    assert config.tasks[0].teacher == "/t"
    with pytest.raises(RecipeError, match=r"student: give 'layers'"):
        parse_config({"student": {"teacher": "/t"}, "output_dir": "/o",
                      "tasks": [{"loss": "distill_mse", "data": ["3i4k"]}]})


def test_format_key_path():
    assert format_key_path(("tasks", 0, "loss", "scale")) == "tasks[0].loss.scale"
    assert format_key_path(()) == "<top>"


def test_overrides_set_nested_values_and_name_bad_paths(tmp_path):
    from tfkosent.training.config import apply_overrides, parse_override

    path = write(tmp_path, MINIMAL)
    config = load_config(path, overrides=dict(parse_override(x) for x in (
        "seed=43", "optimizer.learning_rate=1e-4", "eval.every_steps=50", "tasks.0.batch_size=8")))
    assert config.seed == 43 and config.optimizer.learning_rate == pytest.approx(1e-4)
    assert config.eval.every_steps == 50 and config.tasks[0].batch_size == 8
    assert load_config(path).seed == 42                         # the file itself is untouched
    assert parse_override("eval=null") == ("eval", None)
    assert parse_override("tasks.0.data=[korsts-train]") == ("tasks.0.data", ["korsts-train"])
    with pytest.raises(RecipeError, match=r"override 'seed': expected KEY.PATH=VALUE"):
        parse_override("seed")
    with pytest.raises(RecipeError, match=r"tasks.3: the list has 1 item\(s\)"):
        load_config(path, overrides={"tasks.3.batch_size": 8})
    with pytest.raises(RecipeError, match=r"override 'model.x': model is a str, not a mapping"):
        load_config(path, overrides={"model.x": 1})
    # a misspelt key is created, then rejected by validation with the override named
    with pytest.raises(RecipeError, match=r"with optimizer.lerning_rate=0.1.*unknown key"):
        load_config(path, overrides={"optimizer.lerning_rate": 0.1})
    values = {"tasks": [{"data": ["a"]}]}
    assert apply_overrides(values, {"tasks.0.data": ["b"]})["tasks"][0]["data"] == ["b"]
    assert values == {"tasks": [{"data": ["a"]}]}              # a copy, the input is unchanged


def test_train_cli_set_reaches_the_recipe(tmp_path, capsys, monkeypatch):
    import tfkosent.training.trainer as trainer
    from tfkosent.cli import main

    seen = {}

    def fake_train(config, **kw):
        seen["config"] = config
        raise FileNotFoundError("stopped before training")

    monkeypatch.setattr(trainer, "train", fake_train)
    path = write(tmp_path, MINIMAL)
    assert main(["train", path, "--set", "seed=7", "--set", "optimizer.learning_rate=3e-4"]) == 2
    assert seen["config"].seed == 7 and seen["config"].optimizer.learning_rate == pytest.approx(3e-4)
    assert main(["train", path, "--set", "optimizer.nope=1"]) == 2
    assert "optimizer.nope" in capsys.readouterr().err


def test_train_cli_checks_output_dir_before_loading_anything(tmp_path, capsys):
    """The recipe's output_dir (or --set output_dir=...) that is a file, or under one, is refused
    before the model or the data load: neither exists here, so a late check would fail on them."""
    from tfkosent.cli import main

    afile = tmp_path / "a_file"
    afile.write_text("x")
    path = write(tmp_path, f"""\
        model: {tmp_path / 'no-model'}
        output_dir: {afile}
        progress_bar: false
        tasks:
          - loss: cosent
            data: [{tmp_path / 'nope.tsv'}]
        """)
    for extra, message in (([], f"output_dir {afile} is a file, not a directory"),
                           (["--set", f"output_dir={afile}/run"],
                            f"output_dir {afile}/run: its parent {afile} is a file, not a directory")):
        assert main(["train", path, *extra]) == 2
        err = capsys.readouterr().err
        assert err.splitlines()[-1] == f"tfkosent train: error: {message}", err
        assert "Traceback" not in err
    assert afile.read_text() == "x"


def test_shipped_recipes_are_found_by_name_and_by_their_readme_path(tmp_path, monkeypatch):
    """Outside a checkout (another working directory) `tfkosent train NAME` and the README's
    `tfkosent/configs/NAME.yaml` (also written `./tfkosent/...`) find the shipped recipe."""
    import os
    from tfkosent.training.config import PACKAGED_RECIPES, resolve_recipe_path

    monkeypatch.chdir(tmp_path)
    expected = os.path.join(PACKAGED_RECIPES, "cosent_e5_korsts.yaml")
    for name in ("cosent_e5_korsts", "cosent_e5_korsts.yaml", "tfkosent/configs/cosent_e5_korsts.yaml",
                 "./tfkosent/configs/cosent_e5_korsts.yaml", "default_model/../cosent_e5_korsts"):
        assert os.path.samefile(resolve_recipe_path(name), expected), name
    assert os.path.samefile(resolve_recipe_path("default_model/student_sts"),
                            os.path.join(PACKAGED_RECIPES, "default_model", "student_sts.yaml"))
    (tmp_path / "mine.yaml").write_text("x: 1\n", encoding="utf-8")
    assert resolve_recipe_path("mine.yaml") == "mine.yaml"   # a file of that name comes first
    for missing in ("no_such_recipe", "../configs/cosent_e5_korsts"):
        with pytest.raises(FileNotFoundError, match="nor a shipped recipe .*cosent_e5_korsts"):
            resolve_recipe_path(missing)


def test_train_leaves_no_empty_output_dir_after_a_data_error(tiny_model_dir, tmp_path, capsys):
    """Only a directory the run created, and only while it is still empty: an existing one stays."""
    from tfkosent.cli import main

    for existing in (False, True):
        out = tmp_path / f"run_{existing}"
        if existing:
            out.mkdir()
        path = write(tmp_path, f"""\
            model: {tiny_model_dir}
            output_dir: {out}
            progress_bar: false
            tasks:
              - loss: cosent
                data: [{tmp_path / 'nope.tsv'}]
            """)
        assert main(["train", path]) == 2
        assert "nope.tsv does not exist" in capsys.readouterr().err
        assert out.exists() == existing
