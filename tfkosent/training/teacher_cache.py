"""Teacher sentence embeddings, computed once and cached on disk in shards.

Layout of a cache directory:

    manifest.json        {"format": "tfkosent-teacher-cache", "fingerprint": {...},
                          "num_items", "shard_size", "num_shards"}
    shard-00000.npy      float32 [shard_size, hidden] embeddings of sentences 0 .. shard_size-1
    shard-00001.npy      ...

Every shard is written to a temporary file and renamed into place, so a shard
either exists complete or not at all.  A killed build therefore continues where
it stopped: `build` computes only the missing shards.  The fingerprint (the
teacher's config and weights digest, the sentences' digest, the shard size)
must match the manifest; a cache built for other sentences or another teacher
is an error, never silently reused.

`ShardedCache` is the generic mechanism (any items, any per-item result);
`TeacherCache` and `tfkosent.training.silver.PairScoreCache` specialise it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from tfkosent.data.datasets import atomic_write_bytes, sha256_file

logger = logging.getLogger("tfkosent.training")

FORMAT = "tfkosent-teacher-cache"
MANIFEST = "manifest.json"

EncodeFn = Callable[[List[str]], np.ndarray]


class TeacherCacheError(ValueError):
    """The cache directory belongs to another teacher or other sentences."""


def sentences_digest(sentences: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for s in sentences:
        digest.update(s.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def teacher_fingerprint(teacher_dir: str) -> Dict[str, str]:
    """Identifies a teacher model directory by the digests of its config, weights and
    tokenizer (tokenizer.model or vocab.txt): a change to any of them changes its outputs."""
    from tfkosent.model_dir import CONFIG_FILE, SENTENCEPIECE_FILE, WEIGHTS_FILE, WORDPIECE_FILE
    fingerprint = {"config_sha256": sha256_file(os.path.join(teacher_dir, CONFIG_FILE)),
                   "weights_sha256": sha256_file(os.path.join(teacher_dir, WEIGHTS_FILE))}
    for name in (SENTENCEPIECE_FILE, WORDPIECE_FILE):
        if os.path.isfile(os.path.join(teacher_dir, name)):
            fingerprint["tokenizer_sha256"] = sha256_file(os.path.join(teacher_dir, name))
    return fingerprint


# Fingerprint keys added after caches were first written: a manifest without one was written
# before it existed, and is checked on the keys it has (runs in progress keep their caches).
ADDED_FINGERPRINT_KEYS = ("tokenizer_sha256",)


class ShardedCache:
    """Sharded, resumable results of `compute_fn` over a fixed list of items.

    Shared by the teacher-embedding cache (float32 [n, hidden]) and the
    silver-pair score cache (`tfkosent.training.silver`, float32 [n]): shard i
    holds rows i * shard_size .. of the results, written atomically; the
    manifest's fingerprint (the caller's, plus the items' digest and the shard
    size) must match, otherwise `error` is raised.
    """

    format: str = FORMAT
    ndim: int = 2
    what: str = "teacher cache"
    hint: str = "point teacher_cache at a new directory"
    error = TeacherCacheError

    def __init__(self, directory: str, items: Sequence, fingerprint: Dict[str, str],
                 shard_size: int = 4096):
        if shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        self.directory = os.path.abspath(directory)
        self.items = list(items)
        self.shard_size = shard_size
        self.num_shards = -(-len(self.items) // shard_size)
        self.fingerprint = dict(fingerprint, shard_size=shard_size, **self.items_fingerprint())

    def items_fingerprint(self) -> Dict[str, str]:
        return {"items_sha256": sentences_digest("\0".join(i) if isinstance(i, (tuple, list)) else i
                                                 for i in self.items),
                "num_items": len(self.items)}

    def shard_path(self, i: int) -> str:
        return os.path.join(self.directory, f"shard-{i:05d}.npy")

    def _shard_rows(self, i: int) -> int:
        return min(self.shard_size, len(self.items) - i * self.shard_size)

    def _check_manifest(self) -> None:
        path = os.path.join(self.directory, MANIFEST)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
            old = manifest.get("fingerprint", {})
            changed = sorted(k for k in set(old) | set(self.fingerprint)
                             if old.get(k) != self.fingerprint.get(k)
                             and not (k in ADDED_FINGERPRINT_KEYS and k not in old))
            if manifest.get("format") != self.format or changed:
                raise self.error(
                    f"{self.directory} holds a {self.what} for other inputs ({', '.join(changed)} "
                    f"differ); delete it or {self.hint}")
            return
        os.makedirs(self.directory, exist_ok=True)
        manifest = {"format": self.format, "fingerprint": self.fingerprint,
                    "num_items": len(self.items), "shard_size": self.shard_size,
                    "num_shards": self.num_shards}
        atomic_write_bytes(path, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))

    def _read_shard(self, i: int) -> Optional[np.ndarray]:
        try:
            shard = np.load(self.shard_path(i))
        except (FileNotFoundError, ValueError, OSError, EOFError):
            return None
        if shard.ndim != self.ndim or shard.shape[0] != self._shard_rows(i) \
                or not np.isfinite(shard).all():
            return None
        return shard

    def missing_shards(self) -> List[int]:
        self._check_manifest()
        return [i for i in range(self.num_shards) if self._read_shard(i) is None]

    def build(self, compute_fn: Callable[[list], np.ndarray], batch_size: int = 64,
              progress: bool = False) -> np.ndarray:
        """Computes the missing shards with `compute_fn(list of items) -> float [n, ...]`
        (called on chunks of `batch_size`), then returns all results."""
        missing = self.missing_shards()
        if missing:
            # A killed shard write leaves its temporary file (atomic_write_bytes); one builder
            # per cache directory, so none is in progress here.
            from tfkosent.model_dir import remove_interrupted_writes
            remove_interrupted_writes(self.directory, [os.path.basename(self.shard_path(i))
                                                       for i in missing])
        shards = missing
        if progress and missing:
            from tqdm.auto import tqdm
            shards = tqdm(missing, desc=self.what, unit="shard")
        started = time.monotonic()
        for done, i in enumerate(shards, start=1):
            start = i * self.shard_size
            chunk = self.items[start:start + self._shard_rows(i)]
            parts = [np.asarray(compute_fn(chunk[j:j + batch_size]), np.float32)
                     for j in range(0, len(chunk), batch_size)]
            shard = np.concatenate(parts, axis=0)
            if shard.shape[0] != len(chunk) or shard.ndim != self.ndim or not np.isfinite(shard).all():
                raise ValueError(f"{self.what}: got {shard.shape} (finite: {np.isfinite(shard).all()}) "
                                 f"for {len(chunk)} items")
            buffer = io.BytesIO()
            np.save(buffer, shard)
            atomic_write_bytes(self.shard_path(i), buffer.getvalue())
            if not progress:  # no bar (e.g. stderr is a log file): one line per shard instead
                elapsed = time.monotonic() - started
                logger.info("%s: shard %d/%d written (%d of the %d missing shards built, %.0f s, about %.0f s left)",
                            self.what, i + 1, self.num_shards, done, len(missing), elapsed,
                            elapsed / done * (len(missing) - done))
        return self.load()

    def load(self) -> np.ndarray:
        """All results; ValueError if a shard is missing (run `build`)."""
        self._check_manifest()
        shards = []
        for i in range(self.num_shards):
            shard = self._read_shard(i)
            if shard is None:
                raise ValueError(f"{self.shard_path(i)} is missing or incomplete; run build()")
            shards.append(shard)
        if shards:
            return np.concatenate(shards, axis=0)
        return np.zeros((0,) * self.ndim, np.float32)


class TeacherCache(ShardedCache):
    """Sharded embeddings of `sentences` under `directory`."""

    error = TeacherCacheError

    def __init__(self, directory: str, sentences: Sequence[str], fingerprint: Dict[str, str],
                 shard_size: int = 4096):
        super().__init__(directory, sentences, fingerprint, shard_size)

    @property
    def sentences(self) -> List[str]:
        return self.items

    def items_fingerprint(self) -> Dict[str, str]:
        return {"sentences_sha256": sentences_digest(self.items), "num_sentences": len(self.items)}


def teacher_embeddings(teacher_dir: str, sentences: Sequence[str], cache_dir: str,
                       shard_size: int = 4096, batch_size: int = 64,
                       progress: bool = False) -> np.ndarray:
    """Pooled (not normalized) embeddings float32 [n, hidden] of a teacher model
    directory, from the cache where present, computed and cached otherwise."""
    cache = TeacherCache(cache_dir, sentences, teacher_fingerprint(teacher_dir), shard_size)
    if not cache.missing_shards():
        return cache.load()
    from tfkosent.sentence_encoder import SentenceEncoder

    teacher = SentenceEncoder.load(teacher_dir)
    return cache.build(lambda batch: teacher.encode(batch, batch_size=batch_size,
                                                    normalize_embeddings=False,
                                                    show_progress_bar=False),
                       batch_size=batch_size * 16, progress=progress)
