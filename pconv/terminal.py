"""Whether to draw progress bars: only on a terminal, so logs and CI output stay readable.

One rule for every command (train, export, build, build-plugin, eval, inpaint): a bar redraws itself with
carriage returns, which a log file keeps as thousands of lines (245 KB for ``make demo``).
"""

from __future__ import annotations

import sys


def show_progress(wanted: bool = True) -> bool:
    """True when a progress bar was ``wanted`` and stderr (where tqdm draws) is a terminal."""
    stream = sys.stderr
    try:
        return wanted and stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False
