"""Publishing an embed-corpus run: staging, the swap into OUTPUT, and recovery after a kill.

A run writes into `OUTPUT/.embed-corpus-staging-<token>/` (Beam's temporary directories land
inside it) and is verified there. `publish` then moves an earlier output aside into
`OUTPUT/.embed-corpus-replaced-<token>/` (its manifest first, so OUTPUT no longer claims a
finished run), moves the new files in (the manifest last) and deletes the old ones. Marker
files in the replaced directory say how far the swap got, so `recover`, which every run calls
first, can finish or undo a swap cut short and delete what killed runs left. OUTPUT therefore
holds either the earlier run's output or the new one, never a mix, and a killed run starts
again from scratch.
"""

from __future__ import annotations

import logging
import os
from typing import List, Sequence

from apache_beam.io.filesystems import FileSystems

from tfkosent.beam import outputs
from tfkosent.beam.paths import basename, is_url, join_path, not_directory, relative_to

_LOGGER = logging.getLogger(__name__)

# Directories of a run in progress inside OUTPUT (see the module docstring), and Beam's.
STAGING_PREFIX = ".embed-corpus-staging-"
REPLACED_PREFIX = ".embed-corpus-replaced-"
BEAM_TEMP_PREFIX = "beam-temp-"
WORK_DIR_PREFIXES = (STAGING_PREFIX, REPLACED_PREFIX, BEAM_TEMP_PREFIX)
_SWAP_STARTED = ".swap-started"      # in the replaced dir, before anything moves
_OLD_MOVED = ".old-moved-aside"      # every earlier output file is in the replaced dir


def existing_outputs(output_dir: str) -> List[str]:
    """The embed-corpus files directly in `output_dir` (shards, dead letters, manifest)."""
    found = []
    for pattern in (f"{outputs.EMBEDDINGS_PREFIX}-*", outputs.DEAD_LETTER_NAME, outputs.MANIFEST_NAME):
        for r in FileSystems.match([join_path(output_dir, pattern)]):
            found.extend(m.path for m in r.metadata_list)
    return found


def _top_level_dirs(output_dir: str, prefix: str) -> List[str]:
    """OUTPUT's subdirectories whose names start with `prefix` (locally empty ones too)."""
    if not is_url(output_dir):
        if not os.path.isdir(output_dir):
            return []
        return sorted(os.path.join(output_dir, n) for n in os.listdir(output_dir)
                      if n.startswith(prefix) and os.path.isdir(os.path.join(output_dir, n)))
    names = set()  # object stores have no directories: the first segment of the objects' names
    for m in FileSystems.match([join_path(output_dir, prefix + "*", "**")])[0].metadata_list:
        rel = relative_to(m.path, output_dir)
        if rel and "/" in rel:
            names.add(rel.split("/", 1)[0])
    return sorted(join_path(output_dir, n) for n in names)


def _files_in(directory: str) -> List[str]:
    """The files directly inside `directory`."""
    return sorted(m.path for m in FileSystems.match([join_path(directory, "*")])[0].metadata_list
                  if not_directory(m))


def _delete_dir(path: str) -> None:
    if is_url(path):
        FileSystems.delete([path.rstrip("/") + "/"])  # a trailing "/": recursively
    elif os.path.isdir(path):
        FileSystems.delete([path])


def _move(paths: Sequence[str], directory: str) -> None:
    if paths:
        FileSystems.rename(list(paths), [join_path(directory, basename(p)) for p in paths])


def _touch(path: str) -> None:
    with FileSystems.create(path) as f:
        f.write(b"")


def publish(staging: str, output_dir: str, replaced: str) -> None:
    """Moves a verified run from `staging` into `output_dir`, the manifest last.

    An earlier output is first moved aside into `replaced` (its manifest first, so OUTPUT no
    longer claims a finished run) and deleted at the end. Markers in `replaced` say how far
    this got, so that `recover` can undo a kill at any point.
    """
    manifest = join_path(staging, outputs.MANIFEST_NAME)
    new_files = [p for p in _files_in(staging) if p != manifest]
    old = existing_outputs(output_dir)
    FileSystems.mkdirs(replaced)
    _touch(join_path(replaced, _SWAP_STARTED))
    _move([p for p in old if basename(p) == outputs.MANIFEST_NAME], replaced)
    _move([p for p in old if basename(p) != outputs.MANIFEST_NAME], replaced)
    _touch(join_path(replaced, _OLD_MOVED))
    _move(new_files, output_dir)
    _move([manifest], output_dir)
    _delete_dir(replaced)
    _delete_dir(staging)


def _roll_back(output_dir: str, replaced: str) -> str:
    """Undoes a `publish` cut short: OUTPUT gets its earlier output back."""
    if FileSystems.exists(join_path(replaced, _OLD_MOVED)):
        partial = existing_outputs(output_dir)  # all new: the earlier ones were moved aside
        if partial:
            FileSystems.delete(partial)
    _move([p for p in _files_in(replaced) if basename(p) not in (_SWAP_STARTED, _OLD_MOVED)], output_dir)
    _delete_dir(replaced)
    return f"restored the earlier output from {replaced} (a run stopped while moving its output in)"


def recover(output_dir: str, log: bool = True) -> List[str]:
    """Cleans up after runs that were killed (or failed) in `output_dir`; returns what it did.

    A replaced directory means a `publish` was cut short: if the new manifest reached OUTPUT
    the run had finished and the old output is deleted, otherwise the move is rolled back.
    Then staging directories and top-level `beam-temp-*` directories (Beam's, of runs that
    wrote into OUTPUT directly) are deleted: the next run starts from scratch.
    """
    done = []
    for replaced in _top_level_dirs(output_dir, REPLACED_PREFIX):
        staging = join_path(output_dir, STAGING_PREFIX + basename(replaced)[len(REPLACED_PREFIX):])
        finished = (FileSystems.exists(join_path(output_dir, outputs.MANIFEST_NAME))
                    and not FileSystems.exists(join_path(staging, outputs.MANIFEST_NAME)))
        if finished:
            _delete_dir(replaced)
            done.append(f"deleted {replaced} (the output a finished run replaced)")
        else:
            done.append(_roll_back(output_dir, replaced))
    for prefix in (STAGING_PREFIX, BEAM_TEMP_PREFIX):
        for leftover in _top_level_dirs(output_dir, prefix):
            _delete_dir(leftover)
            done.append(f"deleted {leftover} (left by an interrupted run)")
    if log:
        for line in done:
            _LOGGER.warning("embed-corpus: %s", line)
    return done
