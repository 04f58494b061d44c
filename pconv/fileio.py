"""Atomic file writes, shared by every stage (checkpoints, ONNX models, engines, the plugin library).

Torch-free on purpose: the engine builder and the plugin build must not need torch. A reader (or a
crash) never sees a partial file: data goes to a temporary file beside the target, is flushed to
disk, then renamed over it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def _current_umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def target_mode(path: Path, written: str) -> int:
    """The mode the finished file gets: the replaced file's, else 0666 (0777 if ``written`` is
    executable, e.g. a copied shared library) minus the umask, as ``open()`` would give.

    Why: ``mkstemp`` creates 0600 files, so without this every model, engine and checkpoint would be
    unreadable to an inference server running as another user.
    """
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        executable = os.stat(written).st_mode & 0o111
        return (0o777 if executable else 0o666) & ~_current_umask()


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)``, sync it to disk, then rename it onto ``path``.

    The result keeps the mode of the file it replaces, or honours the umask for a new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, target_mode(path, tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_copy(src: str | Path, dest: str | Path) -> Path:
    """Copy ``src`` onto ``dest`` atomically (keeps permissions, e.g. of a shared library)."""
    return atomic_write(dest, lambda tmp: shutil.copy2(src, tmp))


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks (models and engines are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
