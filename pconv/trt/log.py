"""TensorRT's logger forwarded to Python ``logging``, keeping the last errors for messages."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tensorrt as trt

logger = logging.getLogger("pconv.tensorrt")


def make_trt_logger(trt_module: Any, log: logging.Logger = logger) -> trt.ILogger:
    """A TensorRT logger that forwards to Python ``logging`` and keeps the last errors for messages.

    TensorRT's own messages then follow the application's logging setup (``pconv build
    --verbose`` turns on INFO and VERBOSE ones) instead of being printed unconditionally.
    """

    class _Logger(trt_module.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt_module.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            sev = trt_module.ILogger.Severity
            if severity in (sev.INTERNAL_ERROR, sev.ERROR):
                self.errors.append(msg)
                del self.errors[:-8]
                log.error("TensorRT: %s", msg)
            elif severity == sev.WARNING:
                log.warning("TensorRT: %s", msg)
            elif severity == sev.INFO:
                log.info("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    made: trt.ILogger = _Logger()
    return made


def log_tail(trt_logger: Any) -> str:
    errors = getattr(trt_logger, "errors", None)
    return f" ({'; '.join(errors[-3:])})" if errors else ""
