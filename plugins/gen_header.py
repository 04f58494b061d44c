"""Write ``generated_fields.h`` (the plugin's field list) from :mod:`pconv.plugin_fields`.

``python -m pconv.plugins.gen_header OUT`` is what CMake runs when the build command has not
already written the header, so the C++ plugin never carries a hand-written copy of the list.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pconv.plugin_fields import render_header


def write_header(path: Path) -> Path:
    """Write the header to ``path`` (only if its content changed, so builds stay incremental)."""
    text = render_header()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the PartialConv2d plugin's generated_fields.h.")
    parser.add_argument("out", type=Path, help="path of the header to write")
    args = parser.parse_args(argv)
    print(write_header(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
