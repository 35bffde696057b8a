"""tfkosent.quiet_import: TensorFlow's C++ start-up lines are dropped from the CLI's stderr,
everything else written during the import is kept, and a failing import shows all of it."""

import os
import subprocess
import sys
import textwrap

import pytest

from tfkosent.quiet_import import START_UP_LINES

# The three kinds of line TensorFlow 2.21 writes while loading (copied from a real run here).
START_UP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796614727.697260   14970 port.cc:153] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors from different "
    "computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796614727.699339   14970 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
]
OTHER = [
    "E0000 00:00:1796614731.286718   14970 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
    "I0000 00:00:1796614727.697260   14970 port.cc:153] something else from port.cc",
    "a Python warning written during the import",
]


def test_start_up_pattern_matches_only_the_start_up_lines():
    assert all(START_UP_LINES.match(line) for line in START_UP)
    assert not any(START_UP_LINES.match(line) for line in OTHER)


def _run(tmp_path, body, env_extra=None, modules="['noisy']", optional="()"):
    (tmp_path / "noisy.py").write_text(body, encoding="utf-8")
    script = ("from tfkosent.quiet_import import import_quietly\n"
              f"import_quietly({modules}, optional={optional})\n"
              "import sys; print('imported', sorted(m for m in sys.modules if m in ('noisy', 'absent')))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TFKOSENT_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.getcwd()])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=60)


NOISY = textwrap.dedent(f"""
    import os, sys
    # written at the file-descriptor level, as TensorFlow's C++ code does
    os.write(2, "".join(line + "\\n" for line in {START_UP + OTHER[:2]!r}).encode())
    print({OTHER[2]!r}, file=sys.stderr)
""")


def test_drops_start_up_lines_and_keeps_the_rest(tmp_path):
    proc = _run(tmp_path, NOISY)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "imported ['noisy']\n"
    assert proc.stderr.splitlines() == OTHER


@pytest.mark.parametrize("env", [{"TFKOSENT_TF_LOGS": "1"}, {"TF_CPP_MIN_LOG_LEVEL": "0"}])
def test_asking_for_all_logs_keeps_every_line(tmp_path, env):
    proc = _run(tmp_path, NOISY, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == START_UP + OTHER


def test_a_failing_import_shows_every_captured_line_then_the_error(tmp_path):
    proc = _run(tmp_path, NOISY + "\nraise RuntimeError('the library failed to load')\n")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[:len(START_UP + OTHER)] == START_UP + OTHER
    assert lines[-1] == "RuntimeError: the library failed to load"
    assert proc.stdout == ""


def test_missing_optional_module_is_skipped_and_missing_required_one_raises(tmp_path):
    proc = _run(tmp_path, "", modules="['noisy', 'absent']", optional="('absent',)")
    assert (proc.returncode, proc.stdout) == (0, "imported ['noisy']\n"), proc.stderr
    proc = _run(tmp_path, "", modules="['noisy', 'absent']")
    assert proc.returncode == 1
    assert "ModuleNotFoundError: No module named 'absent'" in proc.stderr


def test_cli_stderr_has_no_tensorflow_start_up_lines(tiny_model_dir):
    """The real thing: `tfkosent similarity` in a fresh process. stderr must be empty apart from
    lines that are not TensorFlow's start-up lines (on TF 2.21 here: empty)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TFKOSENT_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    proc = subprocess.run([sys.executable, "-m", "tfkosent.cli", "similarity", "가나다", "라마바",
                           "--model", tiny_model_dir], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1.0000" in proc.stdout
    assert not any(START_UP_LINES.match(line) for line in proc.stderr.splitlines()), proc.stderr
    assert "cuInit" not in proc.stderr and "DT_INT64" not in proc.stderr, proc.stderr
