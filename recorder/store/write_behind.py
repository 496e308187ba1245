"""Push a growing file to disk as it is written, on a thread of its own, and keep it out of memory.

Measured on the 2-core rig PC this project is tested on (``benchmarks/bench_recorder.py``,
issue #17): appending 300 MB of frames through the page cache cost between 0.1 and 1.2 s of
CPU, two thirds of the time near the top of that range, because the kernel had to reclaim page
cache (charged to the process's memory cgroup) to make room for every new page. On a machine
whose two cores are busy with the camera and the acquisition loop, that CPU is taken from
them: the "slow mode" in which the camera's circular buffer fills. Writing the same bytes and,
every few MB, ``fdatasync`` + ``posix_fadvise(DONTNEED)`` of the part already on disk cost
0.12-0.35 s of CPU (the flushing thread included), in every round.

:class:`WriteBehind` does that for one file: the writer reports how far the file has been
written (:meth:`WriteBehind.written`, a plain store), and the thread syncs and drops the new
part once at least :data:`CHUNK_BYTES` are waiting, or after :data:`INTERVAL_S` for a smaller
rest. So the frames are on disk within about one chunk of the writer (a bound tighter than the
journal's periodic fsync), the writer never waits for the disk, and the file's pages do not
pile up in memory. It works on its own duplicate of the file descriptor, so the writer may
close or reopen its own at any time. A failed sync (an I/O error, a disk found full on
allocation) is kept in :attr:`WriteBehind.error` for the writer to raise. Where the platform
has no ``posix_fadvise`` (macOS), only the syncing is done.
"""

from __future__ import annotations

import os
import threading

#: sync and drop once this many bytes are waiting
CHUNK_BYTES = 8 * 2**20
#: how often the thread looks; a smaller rest is synced after at most this long
INTERVAL_S = 0.05
#: the data-only sync where the platform has one (Linux), else a full fsync (macOS)
_datasync = getattr(os, "fdatasync", os.fsync)


class WriteBehind:
    """Syncs and drops the written part of the file open as ``fd`` (see the module)."""

    def __init__(self, fd: int, name: str) -> None:
        self._fd = os.dup(fd)
        self._end = 0       # how far the writer has written (bytes from the start)
        self._synced = 0    # how far the file is on disk and dropped from the page cache
        self.error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"write-behind {name}",
                                        daemon=True)
        self._thread.start()

    def written(self, end: int) -> None:
        """The file now holds ``end`` bytes the writer has written."""
        self._end = end

    def _run(self) -> None:
        waited = 0.0
        while not self._stop.wait(INTERVAL_S):
            waiting = self._end - self._synced
            waited += INTERVAL_S
            if waiting >= CHUNK_BYTES or (waiting > 0 and waited >= 2 * INTERVAL_S):
                self._sync(self._end)
                waited = 0.0

    def _sync(self, end: int) -> None:
        try:
            _datasync(self._fd)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(self._fd, self._synced, end - self._synced,
                                 os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            if self.error is None:
                self.error = exc
            return
        self._synced = end

    def close(self) -> None:
        """Stop the thread and let go of the duplicate descriptor (no final sync: whoever
        finishes the file syncs it)."""
        self._stop.set()
        self._thread.join()
        os.close(self._fd)
