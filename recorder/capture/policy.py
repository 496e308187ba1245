"""A recording's policies: when silent devices are re-read (:class:`VerifyPolicy`), what a
write error does (:class:`WriteErrorPolicy`), and the error a partial run raises.

Shared by :class:`~nbo_recorder.capture.recorder.Recorder`, which takes the options,
:class:`~nbo_recorder.capture.sink.RecordingSink` and
:class:`~nbo_recorder.capture.state.StateMonitor`, which act on them, and the CLI, which checks
them before anything heavy is imported (this module imports nothing of the recorder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class VerifyPolicy:
    """When the properties of silent devices (no change events) are re-read during a run.

    ``events``: only at the refreshes (new channel, position, time point, stale hint);
    between them a silent value is assumed unchanged and the record says so. ``every-frame``:
    also before every frame's state is recorded. ``interval``: also when ``interval_s``
    seconds have passed since they were last read.
    """

    mode: Literal["events", "every-frame", "interval"] = "every-frame"
    interval_s: float | None = None

    @classmethod
    def parse(cls, text: str | VerifyPolicy) -> VerifyPolicy:
        """``events``, ``every-frame`` or ``interval:S`` (S seconds > 0); a ValueError else."""
        if isinstance(text, VerifyPolicy):
            return text
        value = str(text).strip()
        if value in ("events", "every-frame"):
            return cls(value)  # type: ignore[arg-type]
        if value.startswith("interval:"):
            try:
                seconds = float(value.split(":", 1)[1])
            except ValueError:
                seconds = math.nan
            if math.isfinite(seconds) and seconds > 0:
                return cls("interval", seconds)
        raise ValueError(f"verify must be 'events', 'every-frame' or 'interval:S' (S seconds "
                         f"> 0), not {text!r}")

    def __str__(self) -> str:
        return f"interval:{self.interval_s:g}" if self.mode == "interval" else self.mode


#: the default: catches silent changes on the shipped rigs within a z-stack or burst
DEFAULT_VERIFY = VerifyPolicy()


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
