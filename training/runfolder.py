"""A run folder's saved steps: weights and training state committed together, atomically, as one.

Why: writing ``checkpoint.safetensors`` and then ``train_state.pt`` in place leaves, after a crash
between the two, weights of one step beside the optimizer of another, and the old weights already
gone. Instead each save goes to a fresh step folder, which becomes visible by one rename::

    RUN/steps/step_0000300/checkpoint.safetensors   (weights + config, as always)
    RUN/steps/step_0000300/train_state.pt
    RUN/steps/LATEST                                 "step_0000300" (written atomically after the rename)
    RUN/checkpoint.safetensors, RUN/train_state.pt   the latest pair, for people and tools (hard links
                                                     where the file system allows, else copies)

The previous step folder is kept (:data:`KEEP_STEPS`), so a resume always finds a complete pair: the
one ``LATEST`` names, else the newest complete folder. Run folders written before this layout (only
the two top-level files) are still read.

Torch-free: the callers pass functions that write each file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pconv.fileio import atomic_copy, atomic_write_bytes

STEPS_DIR = "steps"
LATEST_NAME = "LATEST"
STEP_PREFIX = "step_"
#: Complete step folders kept: the newest and the one before it.
KEEP_STEPS = 2

Writer = Callable[[Path], object]


def step_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:07d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def complete_steps(run: Path, names: tuple[str, ...]) -> list[Path]:
    """Step folders of ``run`` holding every file in ``names``, oldest first."""
    root = run / STEPS_DIR
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(STEP_PREFIX) and all((p / n).is_file() for n in names)
    ]
    return sorted(found, key=lambda p: p.name)


def latest_step_dir(run: Path, names: tuple[str, ...]) -> Path | None:
    """The step folder to resume from: the one ``LATEST`` names, else the newest complete one."""
    pointer = run / STEPS_DIR / LATEST_NAME
    if pointer.is_file():
        named = run / STEPS_DIR / pointer.read_text().strip()
        if named.is_dir() and all((named / n).is_file() for n in names):
            return named
    steps = complete_steps(run, names)
    return steps[-1] if steps else None


def has_run(run: Path, names: tuple[str, ...]) -> bool:
    """Whether ``run`` already holds a run (new layout, or any of the old top-level files)."""
    return bool(complete_steps(run, names)) or any((run / n).exists() for n in names)


def commit_step(run: Path, step: int, writers: dict[str, Writer]) -> Path:
    """Write every file of ``step`` into a temporary folder, sync it, then make it visible by a rename.

    Afterwards ``LATEST`` points at it, the top-level copies are refreshed, and step folders older
    than the last :data:`KEEP_STEPS` are removed. A crash at any point leaves a complete earlier step.
    """
    root = run / STEPS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = root / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        for name, write in writers.items():
            write(tmp / name)
            _fsync_file(tmp / name)
        _fsync_dir(tmp)
        if final.exists():  # the same step saved again (e.g. a resume with nothing to do): replace it
            old = root / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_bytes(root / LATEST_NAME, (final.name + "\n").encode())
    for name in writers:
        _publish(final / name, run / name)
    for old_step in complete_steps(run, tuple(writers))[:-KEEP_STEPS]:
        shutil.rmtree(old_step, ignore_errors=True)
    return final


def _publish(src: Path, dest: Path) -> None:
    """Put ``src`` at ``dest`` atomically: a hard link (no extra disk) or, where that fails, a copy."""
    tmp = dest.with_name(f".{dest.name}.link")
    try:
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
        os.replace(tmp, dest)
    except OSError:
        tmp.unlink(missing_ok=True)
        atomic_copy(src, dest)
