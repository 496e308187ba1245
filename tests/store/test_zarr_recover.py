"""A run killed (SIGKILL) at a seeded frame, then ``recover``: the store describes exactly the
frames whose chunks reached the disk, with their pixels, and says it is incomplete.

The child process logs each frame's hash as the camera delivers it (the test's ground
truth, independent of the recorder) and kills itself when the writer is handed frame K.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorstore")
yaozarrs = pytest.importorskip("yaozarrs")

from nbo_recorder.cli.main import main  # noqa: E402
from nbo_recorder.judge.reader import read  # noqa: E402

pytestmark = pytest.mark.slow
FRAMES = 36
CHILD = '''
import hashlib, os, signal, sys
from pathlib import Path
import useq
from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.rig import load_core
from nbo_recorder.store import zarr_writer
out, log_path, kill_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
original = zarr_writer.ZarrStoreWriter.write
def write(self, img, record):
    if record.index == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, img, record)
zarr_writer.ZarrStoreWriter.write = write
core = load_core("demo")
core.setProperty("Camera", "Mode", "Noise")
core.setProperty("Camera", "OnCameraCCDXSize", "48")
core.setProperty("Camera", "OnCameraCCDYSize", "32")
def on_frame(img, event, *_):
    os.write(log_fd, (hashlib.sha1(img.tobytes()).hexdigest() + "\\n").encode())
core.mda.events.frameReady.connect(on_frame)
seq = useq.MDASequence(stage_positions=[(0, 0, 0), (50, 50, 0)],
                       channels=[{"config": "DAPI", "exposure": 1},
                                 {"config": "FITC", "exposure": 1}],
                       z_plan={"range": 2, "step": 1}, time_plan={"interval": 0, "loops": 3})
core.mda.run(seq, output=Recorder(core, sys.argv[4]).sink(out))
'''


@pytest.mark.parametrize("seed", [1, 2])
def test_recover_after_sigkill_describes_exactly_the_frames_written(
        tmp_path: Path, seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import DEMO_PROFILE

    kill_at = random.Random(seed).randrange(2, FRAMES)
    out, log = tmp_path / "run.ome.zarr", tmp_path / "frames.log"
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), str(log), str(kill_at),
                           str(DEMO_PROFILE)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == -9, done.stderr[-2000:]
    delivered = log.read_text().split()
    assert len(delivered) >= kill_at
    chunks = sorted(p for p in out.glob("s*/0/c/*/*/*/0/0") if p.is_file())

    assert main(["recover", str(out)]) == 0, capsys.readouterr().err
    yaozarrs.validate_zarr_store(out)
    recorded = read(out)
    status = {m.k: m.value for ann in recorded.ome.structured_annotations.map_annotations
              for m in ann.value.ms}["status"]
    assert status.startswith("incomplete")
    described = []
    for n, image in enumerate(recorded.ome.images):
        attrs = json.loads((out / str(n) / "zarr.json").read_text())["attributes"]
        data = np.asarray(read_array(out / str(n) / "0"))
        assert data.shape[:3] == (image.pixels.size_t, image.pixels.size_c,
                                  image.pixels.size_z)
        for plane in attrs["nbo-recorder"]["planes"]:
            pixels = np.ascontiguousarray(data[plane["t"], plane["c"], plane["z"]])
            assert hashlib.sha1(pixels.tobytes()).hexdigest() == delivered[plane["frame"]]
            described.append(plane["frame"])
    assert len(described) == len(recorded.planes) == len(chunks)


def read_array(path: Path) -> np.ndarray:
    """The array at ``path`` read with zarr-python (not the recorder's engine)."""
    import zarr

    return np.asarray(zarr.open_array(str(path), mode="r")[...])
