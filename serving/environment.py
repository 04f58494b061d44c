"""Where the Triton server binary comes from, and the environment its Python models need.

pconv serves with the real ``tritonserver`` that NVIDIA ships inside the PyPI wheel
``nvidia-pytriton`` (server, python backend and the python-backend stubs for Python 3.8-3.13;
CPU-only here: that build has no ONNX Runtime or TensorRT backend). pconv never imports PyTriton:
PyTriton pins ``numpy<2`` (which would downgrade numpy and break ``opencv-python-headless`` 5 in
the same environment), so the wheel is unpacked *without its dependencies* into its own folder,
the **Triton home** (``pconv serve --setup``; ``make setup`` does it). The server binary and the
stub link only the libraries bundled in the wheel plus ``libpython``; the Python models run on
this interpreter's packages (numpy 2 works), so serving needs no second virtual environment.

Two fixes a launcher must make, measured on this machine:

* the stub links the *system* ``libpython3.X``; when this interpreter is another build of the
  same version (pyenv, a venv made from it), model load fails
  (``'_thread.RLock' object has no attribute '_recursion_count'``). This interpreter's
  ``sysconfig`` ``LIBDIR`` goes first in the server's ``LD_LIBRARY_PATH``;
* the stub's Python does not see this environment's packages: the launcher passes this
  interpreter's ``sys.path`` and site folders (``PCONV_TRITON_PATH`` / ``PCONV_TRITON_SITE``), which
  the model files add (``.pth`` files included, so editable installs work).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from pconv.errors import PconvError

#: The wheel that carries ``tritonserver`` (pinned: the launcher knows its layout and flags).
TRITON_WHEEL = "nvidia-pytriton==0.7.0"
HOME_ENV = "PCONV_TRITON_HOME"
PATH_ENV = "PCONV_TRITON_PATH"
SITE_ENV = "PCONV_TRITON_SITE"
SETUP_HINT = "run `pconv serve --setup` (installs the Triton server binary, ~55 MB, from PyPI)"


class ServeEnvironmentError(PconvError):
    """The Triton server is not installed where pconv looks, or cannot run here."""


def default_home() -> Path:
    """``$PCONV_TRITON_HOME``, else ``<sys.prefix>/triton`` (inside the virtual environment)."""
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else Path(sys.prefix) / "triton"


@dataclass(frozen=True)
class TritonInstall:
    """A ``tritonserver`` from the nvidia-pytriton wheel, unpacked under ``root``."""

    root: Path  # the folder holding ``pytriton/`` and ``nvidia_pytriton.libs/``

    @property
    def server_dir(self) -> Path:
        return self.root / "pytriton" / "tritonserver"

    @property
    def binary(self) -> Path:
        return self.server_dir / "bin" / "tritonserver"

    @property
    def libs(self) -> Path:
        return self.root / "nvidia_pytriton.libs"

    @property
    def python_backend(self) -> Path:
        return self.server_dir / "backends" / "python"

    def stub(self, version: tuple[int, int] | None = None) -> Path:
        major, minor = version or sys.version_info[:2]
        return self.server_dir / "python_backend_stubs" / f"{major}.{minor}" / "triton_python_backend_stub"

    def check(self) -> TritonInstall:
        if not self.binary.is_file():
            raise ServeEnvironmentError(f"no Triton server at {self.binary}: {SETUP_HINT}")
        if not (self.python_backend / "libtriton_python.so").is_file():
            raise ServeEnvironmentError(
                f"the Triton install at {self.root} has no python backend ({self.python_backend}): "
                f"an incomplete install; {SETUP_HINT}"
            )
        if not self.stub().is_file():
            raise ServeEnvironmentError(
                f"the Triton install at {self.root} has no python-backend stub for Python "
                f"{sys.version_info.major}.{sys.version_info.minor}: use Python 3.8-3.13"
            )
        if libpython_dir() is None and not _system_libpython():
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            raise ServeEnvironmentError(
                f"the python-backend stub needs a shared libpython{version}, and this interpreter "
                f"({sys.executable}) is statically linked with none installed: use a Python built with "
                "--enable-shared (the system Python, or pyenv with PYTHON_CONFIGURE_OPTS=--enable-shared)"
            )
        return self


def find_install(home: Path | None = None) -> TritonInstall:
    """The Triton install in ``home`` (default :func:`default_home`), or an error naming the fix."""
    return TritonInstall(home or default_home()).check()


def setup(home: Path | None = None, *, quiet: bool = False) -> TritonInstall:
    """Install the server binary into ``home`` with pip (``--no-deps --target``: nothing else changes)."""
    home = home or default_home()
    try:
        return find_install(home)
    except ServeEnvironmentError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    # --upgrade: pip --target leaves a partial install (an interrupted setup) as it is without it
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--upgrade", "--target", str(home)]
    command.append(TRITON_WHEEL)
    if quiet:
        command.insert(4, "-q")
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise ServeEnvironmentError(
            f"`{' '.join(command)}` failed (exit {done.returncode}); check the network access to PyPI"
        )
    return find_install(home)


def backend_directory(install: TritonInstall, into: Path) -> Path:
    """A backends folder for the server: the python backend plus the stub for this Python."""
    python = into / "python"
    python.mkdir(parents=True, exist_ok=True)
    for item in install.python_backend.iterdir():
        if item.is_file():
            shutil.copy2(item, python / item.name)
    shutil.copy2(install.stub(), python / "triton_python_backend_stub")
    return into


def libpython_dir() -> Path | None:
    """This interpreter's ``libpython`` folder, when it has a shared one (the libpython fix)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    if libdir and name and (Path(libdir) / name).exists():
        return Path(libdir)
    return None


def _system_libpython() -> bool:
    import ctypes.util

    return ctypes.util.find_library(f"python{sys.version_info.major}.{sys.version_info.minor}") is not None


def server_env(install: TritonInstall, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the server process: the libpython fix and this interpreter's packages."""
    env = dict(os.environ if base is None else base)
    first = [str(p) for p in (libpython_dir(), install.libs) if p is not None]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*first, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env[PATH_ENV] = os.pathsep.join(p for p in sys.path if p and Path(p).exists())
    sites = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        sites.append(site.getusersitepackages())
    env[SITE_ENV] = os.pathsep.join(s for s in sites if Path(s).is_dir())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
