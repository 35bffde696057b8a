"""Stopping a long job cleanly wherever it is (standard library only: the pipeline's dry run
and other TensorFlow-free commands import it).

`stops_anywhere()` turns SIGTERM into `Interrupted` (as Ctrl-C is KeyboardInterrupt) outside the
training loop, whose own `checkpointing.StopSignals` finishes the running step and checkpoints;
`stopped_message` is the one line a command prints for either.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Tuple


class Interrupted(BaseException):
    """SIGTERM received outside the training loop (see `stops_anywhere`).

    A BaseException, like KeyboardInterrupt: a stop request, not an error, so `except
    Exception` handlers do not swallow it, and AutoGraph passes it through unchanged when it
    arrives while a tf.function is traced (an Exception would become a StagingError)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stops_anywhere():
    """SIGTERM raises `Interrupted` wherever the main thread is, as Ctrl-C raises
    KeyboardInterrupt: a job stopped while it loads data, builds a cache or writes its
    outputs unwinds (its atomic writes are undone) and its command prints the resume hint,
    instead of dying at once. The training loop's `StopSignals` takes over inside the loop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupted(signum, frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stopped_message(prog: str, error: BaseException,
                    how: str = "run the same command with --resume to continue from what was saved",
                    ) -> Tuple[str, int]:
    """(the one-line message, the exit status 128 + signal) for `Interrupted` or
    KeyboardInterrupt caught by a command; `how` says how to continue."""
    signum = getattr(error, "signum", signal.SIGINT)
    return f"{prog}: stopped by {signal.Signals(signum).name}; {how}", 128 + int(signum)
