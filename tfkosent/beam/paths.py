"""Paths of `tfkosent.beam`: local files and URLs (gs://, s3://, ...) alike.

Local paths use the OS separator and are absolute; URLs use "/". Ids of embedded lines are
built from these (`relative_name`, `common_base`), so both kinds give the same "/"-separated
ids.
"""

from __future__ import annotations

import os
import posixpath
from typing import List, Optional, Sequence

from apache_beam.io.filesystems import FileSystems

GLOB_CHARS = "*?["


def is_url(path: str) -> bool:
    return "://" in path


def join_path(*parts: str) -> str:
    return posixpath.join(*parts) if is_url(parts[0]) else os.path.join(*parts)


def normalize_pattern(pattern: str) -> str:
    """Absolute local path (URLs unchanged); a directory means every file under it.

    Beam's globs: `*` stays within a directory, `**` crosses directories.
    """
    if not is_url(pattern):
        pattern = os.path.abspath(os.path.expanduser(pattern))
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**")
    elif pattern.endswith("/"):
        pattern += "**"
    return pattern


def pattern_base_dir(pattern: str) -> str:
    """The directory ids are relative to: the pattern's part before its first glob."""
    cut = min((pattern.index(c) for c in GLOB_CHARS if c in pattern), default=len(pattern))
    head = pattern[:cut]
    sep = "/" if is_url(pattern) else os.sep
    if cut == len(pattern):  # a plain file
        return head.rsplit(sep, 1)[0] if sep in head else ""
    return head[:head.rfind(sep)] if sep in head else ""


def has_glob(pattern: str) -> bool:
    return any(c in pattern for c in GLOB_CHARS)


def relative_to(path: str, base: str) -> Optional[str]:
    """`path` relative to directory `base` ("/"-separated), or None when not under it."""
    if not base:
        return None
    if is_url(path):
        prefix = base if base.endswith("://") else base.rstrip("/") + "/"
    else:
        prefix = base.rstrip("/\\") + os.sep
    if not path.startswith(prefix):
        return None
    rel = path[len(prefix):]
    return rel if is_url(path) else rel.replace(os.sep, "/")


def relative_name(path: str, base: str) -> str:
    """`path` relative to directory `base` ("/"-separated), else its file name (no common
    directory: `common_base` gave "")."""
    rel = relative_to(path, base)
    return rel if rel is not None else posixpath.basename(path.replace(os.sep, "/"))


def common_base(bases: Sequence[str]) -> str:
    """The deepest directory holding all `bases` (segment-wise, so `/d/ab` and `/d/ac` give `/d`).

    Ids are relative to it: one input keeps the ids of its own directory, several inputs get
    ids that tell their files apart (`d1/x.txt`, `d2/x.txt`). URLs of one scheme share at
    least `scheme://`; "" when there is nothing in common (local paths and URLs mixed).
    """
    bases = list(dict.fromkeys(bases))
    if len(bases) == 1:
        return bases[0]
    if not bases or "" in bases:
        return ""
    schemes = {b.split("://", 1)[0] + "://" if is_url(b) else "" for b in bases}
    if len(schemes) != 1:
        return ""
    scheme = schemes.pop()
    sep = "/" if scheme else os.sep
    common: List[str] = []
    for parts in zip(*(b[len(scheme):].rstrip(sep).split(sep) for b in bases)):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    if scheme:
        return scheme + "/".join(common)
    return sep.join(common) or sep  # ["", "data"] -> "/data"; [""] -> "/"


def basename(path: str) -> str:
    return posixpath.basename(path.replace("\\", "/"))


def is_file(path: str) -> bool:
    if not is_url(path):
        return os.path.isfile(path)
    return any(m.path == path for m in FileSystems.match([path])[0].metadata_list)


def is_under(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or inside it."""
    directory = directory.rstrip("/\\")
    sep = "/" if is_url(path) else os.sep
    return path.rstrip("/\\") == directory or path.startswith(directory + sep)


def not_directory(metadata) -> bool:
    path = metadata.path
    if path.endswith("/") or path.endswith("\\"):
        return False
    return is_url(path) or not os.path.isdir(path)
