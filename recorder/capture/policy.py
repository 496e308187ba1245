"""How a recording answers a failure: the write-error policy and the error a partial run raises.

Shared by :class:`~nbo_recorder.capture.recorder.Recorder`, which takes the options, and
:class:`~nbo_recorder.capture.sink.RecordingSink`, which acts on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class WriteErrorPolicy:
    """What a sink does when the disk refuses a frame (see
    :class:`~nbo_recorder.capture.recorder.Recorder`)."""

    on_write_error: Literal["stop", "pause"] = "stop"
    write_retry_s: float = 10.0
    max_pause_s: float | None = None

    def __post_init__(self) -> None:
        if self.on_write_error not in ("stop", "pause"):
            raise ValueError(f"on_write_error must be 'stop' or 'pause', "
                             f"not {self.on_write_error!r}")
        if self.write_retry_s <= 0 or not math.isfinite(self.write_retry_s):
            raise ValueError(f"write_retry_s must be a positive number of seconds, "
                             f"not {self.write_retry_s!r}")
        if self.max_pause_s is not None and not self.max_pause_s >= 0:
            raise ValueError(f"max_pause_s must be >= 0 seconds or None, "
                             f"not {self.max_pause_s!r}")


class RecordingError(RuntimeError):
    """The run was recorded only partly; the message says what failed."""
