"""Importing TensorFlow without its C++ start-up lines, for the command line and the demo.

Why this exists: TensorFlow 2.21 writes lines like these to stderr while its shared libraries
load, once for tensorflow and once more when tensorflow_text loads its ops::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796614727.697260   14970 port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:1796614727.699339   14970 cudart_stub.cc:31] Could not find cuda drivers ...

They are logged before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot filter them
(tensorflow/tensorflow#100442); the lines logged after it (cuInit, cpu_feature_guard, the
oneDNN int64 fallback) do obey it. `import_quietly` imports the modules with file descriptor 2
pointed at a temporary file, then writes back to stderr every captured line except the three
kinds above. If the import raises, every captured line is written back, unfiltered, before the
exception propagates. Only the import is captured: the process's stderr is back in place
before any model is loaded.

The library itself (`import tfkosent`) never does this: redirecting a process's file
descriptors is a decision for the program, not for a library it imports.
Set TFKOSENT_TF_LOGS=1, or TF_CPP_MIN_LOG_LEVEL=0, to see every line.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from typing import Sequence

# The start-up lines that are dropped; any other captured line is written back.
START_UP_LINES = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|^I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\."
    r"|^I\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine")

TENSORFLOW_MODULES = ("tensorflow", "tensorflow_text")


def wants_all_logs() -> bool:
    """True when the user asked for TensorFlow's every log line."""
    return (os.environ.get("TFKOSENT_TF_LOGS", "") not in ("", "0")
            or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "") == "0")


def import_quietly(modules: Sequence[str] = TENSORFLOW_MODULES,
                   optional: Sequence[str] = ("tensorflow_text",)) -> None:
    """Imports `modules` in order, dropping their C++ start-up lines from stderr.

    Modules in `optional` that are not installed are skipped. Modules already imported
    cost nothing; when all are, or `wants_all_logs()`, stderr is not touched.
    """
    pending = [m for m in modules if m not in sys.modules]
    if not pending:
        return
    if wants_all_logs():
        _import_all(pending, optional)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fd = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            _import_all(pending, optional)
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()  # Python-level writes made during the import go to the file too
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            capture.seek(0)
            lines = capture.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines
                                         if not START_UP_LINES.match(line.rstrip("\r\n"))]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _import_all(modules: Sequence[str], optional: Sequence[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if name not in optional or e.name != name:
                raise
