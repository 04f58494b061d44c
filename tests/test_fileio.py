"""The atomic writer: never a partial file, and the finished file readable by others as usual."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pconv.fileio import atomic_copy, atomic_write, atomic_write_bytes


def test_new_files_honour_the_umask_and_replaced_files_keep_their_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fresh = atomic_write_bytes(tmp_path / "model.onnx", b"new")
        assert fresh.stat().st_mode & 0o777 == 0o644  # mkstemp alone gives 0600
        os.umask(0o077)
        assert atomic_write_bytes(tmp_path / "private.bin", b"x").stat().st_mode & 0o777 == 0o600
        shared = tmp_path / "shared.engine"
        shared.write_bytes(b"old")
        shared.chmod(0o664)
        atomic_write_bytes(shared, b"replaced")
        assert shared.read_bytes() == b"replaced" and shared.stat().st_mode & 0o777 == 0o664
        os.umask(0o022)
        library = tmp_path / "lib.so"
        library.write_bytes(b"\x7fELF")
        library.chmod(0o755)
        assert atomic_copy(library, tmp_path / "copy.so").stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(old)


def test_a_failed_replace_leaves_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "checkpoint.safetensors"
    target.write_bytes(b"good")

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"half"))
    assert target.read_bytes() == b"good" and sorted(p.name for p in tmp_path.iterdir()) == [target.name]
