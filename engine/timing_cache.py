"""The tactic timing cache file: seeded into a build, then merged back under a file lock.

Several ``pconv build`` runs may share one cache (``--timing-cache ~/.cache/pconv/trt.cache``).
Each build reads the file when it starts and, when it ends, merges its own timings with whatever
the file holds *now* and replaces it. The read-merge-write runs under an exclusive ``flock`` on
``<cache>.lock`` and the write is atomic (:func:`pconv.fileio.atomic_write_bytes`), so two builds
finishing together keep both sets of entries and a reader never sees a half-written cache.

Only two TensorRT calls are needed here, passed in by the caller: ``create(bytes) -> cache`` (the
builder config's ``create_timing_cache``) and the cache's own ``combine``/``serialize``. That keeps
this module free of ``tensorrt`` and testable with a fake cache.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pconv.fileio import atomic_write_bytes

if TYPE_CHECKING:
    import tensorrt as trt


class TimingCache(Protocol):
    """What pconv uses of ``tensorrt.ITimingCache``."""

    def combine(self, input_cache: Any, ignore_mismatch: bool) -> bool: ...

    def serialize(self) -> Any: ...


#: ``IBuilderConfig.create_timing_cache``: a cache from serialized bytes (``b""`` for an empty one).
CreateCache = Callable[[bytes], Any]


def lock_path(cache_path: Path) -> Path:
    """``trt.cache`` -> ``trt.cache.lock``: beside the cache, so every build of that cache agrees."""
    return cache_path.with_name(cache_path.name + ".lock")


@contextmanager
def locked(cache_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<cache>.lock`` (blocking) for the duration of the block.

    The lock file is never removed: deleting it while another build waits on it would let a
    third build lock a new file and run alongside the second.
    """
    path = lock_path(cache_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if sys.platform == "win32":  # pragma: no cover - TensorRT builds run on Linux here
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read(cache_path: Path) -> bytes:
    """The cache file's bytes, or ``b""`` if there is none yet (the file is replaced atomically)."""
    return cache_path.read_bytes() if cache_path.is_file() else b""


def attach(config: trt.IBuilderConfig, previous: bytes, warnings: list[str]) -> str:
    """Give the builder the cache's contents (or an empty cache); returns a note for the report."""
    note = "read and updated" if previous else "created"
    cache = None
    if previous:
        try:
            cache = config.create_timing_cache(previous)
        except Exception:  # a corrupt file: start over rather than fail the build
            cache = None
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            warnings.append("the timing cache is from another GPU/TensorRT or damaged; starting a new one")
            note = "replaced (incompatible)"
            cache = None
    if cache is None:
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return note


def merge_into_file(
    cache_path: Path, cache: TimingCache, create: CreateCache, previous: bytes, warnings: list[str]
) -> None:
    """Under the lock: merge what the file holds now into ``cache`` and write the result atomically.

    ``previous`` is what the file held when this build started (``cache`` already contains it), so
    the file is merged only if another build replaced it meanwhile.
    """
    with locked(cache_path):
        current = read(cache_path)
        if current and current != previous:
            try:
                other = create(current)
                if other is None or not cache.combine(other, ignore_mismatch=True):
                    warnings.append("could not merge the timing cache written by another build")
            except Exception as exc:
                warnings.append(f"could not merge the timing cache written by another build ({exc})")
        atomic_write_bytes(cache_path, bytes(cache.serialize()))


def save(config: trt.IBuilderConfig, cache_path: Path, previous: bytes, warnings: list[str]) -> bool:
    """Write the builder's timing cache back (merged, locked); False if TensorRT had none to give."""
    cache = config.get_timing_cache()
    if cache is None:
        warnings.append("TensorRT returned no timing cache; it was not saved")
        return False
    merge_into_file(cache_path, cache, config.create_timing_cache, previous, warnings)
    return True


class CacheFile:
    """One build's use of a cache file: what it held at the start, and the note for the report."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.before = read(path)
        self.note = ""

    def attach(self, config: trt.IBuilderConfig, warnings: list[str]) -> None:
        self.note = attach(config, self.before, warnings)

    def save(self, config: trt.IBuilderConfig, warnings: list[str]) -> None:
        if not save(config, self.path, self.before, warnings):
            self.note = "not saved"
