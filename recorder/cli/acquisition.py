"""Running an acquisition from the command line, and saying what a written file records.

``demo`` and ``acquire`` load a rig, check the sequence against it (every channel preset and
the devices it names, z limits: :mod:`~nbo_recorder.capture.preflight`) before any setting is
applied or file created, apply ``--set`` values, optionally run the NBO pre-flight check, and
run a useq-schema sequence into a :class:`~nbo_recorder.capture.sink.RecordingSink`
(an OME-TIFF, or an OME-Zarr store for ``--format ome-zarr`` or an ``--out`` ending in
``.zarr``: :func:`output_for`)
on a worker thread, so that Ctrl-C cancels the acquisition cleanly and the file is still
finished. While it runs, a progress bar (on a terminal) shows the frames written, the frame
rate and the data waiting for the disk. :func:`summarise` is the short report both commands
(and ``recover``) print afterwards, read back from the file itself.

The recorder, pymmcore-plus and useq are imported inside the functions: the CLI's start-up
(``--help``) does not pay for them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from nbo_recorder.cli.console import (
    EXIT_INTERRUPTED,
    PROG,
    CommandError,
    FrameRate,
    acquisition_note,
    progress_display,
    say,
)
from nbo_recorder.store.formats import FORMAT_SUFFIXES, OutputFormat, format_of

if TYPE_CHECKING:
    from ome_types.model import OME
    from pymmcore_plus import CMMCorePlus
    from useq import MDASequence

    from nbo_recorder.capture.recorder import RecorderOptions
    from nbo_recorder.capture.sink import RecordingSink
    from nbo_recorder.profile.model import Profile

#: The demo rigs: Micro-Manager config, bundled profile, and the sequence the demo runs.
DEMO_RIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "widefield": ("demo", "mm_demo.yaml", {
        "channels": [
            {"config": "DAPI", "group": "Channel", "exposure": 10},
            {"config": "FITC", "group": "Channel-Multiband", "exposure": 15},
        ],
        "z_plan": {"range": 2.0, "step": 1.0},
        "time_plan": {"interval": 0.05, "loops": 3},
        "axis_order": "tpcz",
    }),
    "spinning-disk": ("sim_spinning_disk.cfg", "sim_spinning_disk.yaml", {
        "channels": [
            {"config": "488-GFP", "group": "Channel", "exposure": 20},
            {"config": "561-mCherry", "group": "Channel", "exposure": 30},
            {"config": "BF-LED", "group": "Channel", "exposure": 5},
        ],
        "z_plan": {"range": 2.0, "step": 1.0},
        "time_plan": {"interval": 0.05, "loops": 3},
        "axis_order": "tpcz",
    }),
}

#: seconds between two looks at a running acquisition (Ctrl-C and the progress bar)
_POLL_S = 0.2


def bundled_profile(name: str) -> Path:
    """A profile shipped with nbo-recorder (repository checkout or installed wheel)."""
    from nbo_recorder.profile.errors import ProfileError

    here = Path(__file__).resolve().parents[1]  # the nbo_recorder package folder
    for candidate in (here.parent / "hardware_profiles" / name, here / "hardware_profiles" / name):
        if candidate.is_file():
            return candidate
    raise ProfileError(f"bundled profile {name!r} not found next to {here}")


def bundled_rig_config(name: str) -> str:
    """``"demo"`` or the path of a simulated rig's .cfg shipped in ``mocks/rigs``."""
    from nbo_recorder import sim
    from nbo_recorder.rig import DEMO

    if name == DEMO:
        return DEMO
    return str(Path(sim.__file__).resolve().parent / "rigs" / name)


def demo_sequence(rig: str) -> MDASequence:
    """The sequence ``nbo-recorder demo --rig RIG`` runs."""
    import useq

    return useq.MDASequence(**DEMO_RIGS[rig][2])


def load_sequence(path: Path) -> MDASequence:
    """A useq-schema sequence file, refused (``ValueError``) before any hardware is touched
    when it is unreadable or carries metadata the NBO record cannot hold."""
    import useq

    if not path.is_file():
        raise ValueError(f"{path}: sequence file not found")
    try:
        sequence = useq.MDASequence.from_file(path)
    except Exception as exc:
        raise ValueError(f"{path}: not a valid useq-schema MDASequence: {exc}") from exc
    if sequence.metadata:  # the NBO checks load the XSD: only when there is something to check
        from nbo_recorder.render.nbo_checks import study_problems

        problems = study_problems(sequence.metadata)
        if problems:
            raise ValueError(f"{path}: " + "; ".join(problems))
    return sequence


def output_for(out: Path, output_format: OutputFormat | None) -> Path:
    """The output path for ``--out`` and ``--format``: ``out`` when the format is not given
    (the suffix says it: ``*.zarr`` is OME-Zarr) or its suffix already names that format,
    else ``out`` with the format's suffix appended. An ``out`` whose suffix names the other
    format is refused (ValueError, exit code 2)."""
    if output_format is None or format_of(out) == output_format:
        return out
    suffix = FORMAT_SUFFIXES[output_format]
    if out.name.lower().endswith((".tif", ".tiff", ".zarr")):
        raise ValueError(f"--out {out} names an {format_of(out)} output but --format is "
                         f"{output_format}; use a name ending in {suffix} or leave out --format")
    return out.with_name(out.name + suffix)


def record(
    mm_config: str, profile: str | Path, sequence: MDASequence, out: Path, *, overwrite: bool,
    settings: Sequence[str] = (), options: RecorderOptions | None = None,
    tier: int | None = None, strict: bool = False, study: Path | None = None,
) -> Path:
    """Load the rig, apply settings, run ``sequence`` and record it to ``out``.

    ``study`` (a study YAML: experiment, sample, mounting, fluorophores) completes the
    sequence's ``metadata.nbo``; both are checked before the rig is loaded (a bad key or value:
    :class:`~nbo_recorder.profile.study.StudyError`, exit code 2), and a channel whose
    fluorophore the table does not know and the study gives no peaks for is named.

    ``options`` go to :class:`~nbo_recorder.capture.recorder.Recorder` (what to do on device and
    write errors). With ``tier``, a pre-flight check lists (on stderr) what the file would lack
    at that NBO tier before the first frame; with ``strict`` too, any gap refuses the
    acquisition (:class:`~nbo_recorder.cli.console.CommandError`, exit code 1). Ctrl-C cancels
    the acquisition and still finishes the file.
    """
    from nbo_recorder.capture.output_path import check_output_paths
    from nbo_recorder.profile.load import load_profile
    from nbo_recorder.rig import load_core, release_core
    from nbo_recorder.store.tiff_writer import check_output_path

    # before the rig is loaded or any file created: an output that cannot be written, a
    # profile or study that cannot be recorded
    check_output_paths(out, overwrite)
    check_output_path(out, overwrite)
    if format_of(out) == "ome-zarr":  # a missing optional package, named before the rig loads
        from nbo_recorder.store.zarr_writer import require_backend

        require_backend()
    stated = load_profile(profile)  # a malformed profile fails here, not after the rig loads
    if study is not None or (sequence.metadata or {}).get("nbo"):
        from nbo_recorder.profile.study import study_for_run

        metadata, gaps = study_for_run(study, stated, sequence.metadata,
                                       [c.config for c in sequence.channels])
        sequence = sequence.model_copy(update={"metadata": metadata})
        for gap in gaps:
            say(f"study: {gap}", prefix="")
    core = load_core(mm_config)
    try:
        _record_on(core, profile, sequence, out, overwrite=overwrite, settings=settings,
                   options=options or {}, tier=tier, strict=strict)
    finally:
        # now, not at interpreter exit: MMCore's notification thread calling into a
        # finalising interpreter aborts the process (see nbo_recorder.rig)
        release_core(core)
    return out


def _record_on(
    core: CMMCorePlus, profile: str | Path | Profile, sequence: MDASequence, out: Path, *,
    overwrite: bool, settings: Sequence[str], options: RecorderOptions, tier: int | None,
    strict: bool,
) -> None:
    from nbo_recorder.capture.policy import RecordingError
    from nbo_recorder.capture.preflight import check_sequence
    from nbo_recorder.capture.recorder import Recorder
    from nbo_recorder.judge.validate import format_report
    from nbo_recorder.rig import apply_settings

    # before any setting is applied, file created or the MDA started: a sequence the core
    # cannot run is refused here (SequenceError, exit code 2), naming preset, device, position
    check_sequence(core, sequence)
    apply_settings(core, settings)
    try:
        recorder = Recorder(core, profile, **options)
        sink = recorder.sink(out, overwrite=overwrite)
        if tier is not None:
            checked = recorder.preflight(tier, sequence, source=f"pre-flight of {out}")
            say(f"pre-flight, NBO tier {tier}: "
                + (f"{checked.gaps} item(s) would be missing or invalid in the file; "
                   "`nbo-recorder profile check` names the profile fields that state them"
                   if checked.gaps else "nothing missing"), prefix="")
            if checked.gaps:
                say(format_report(checked.report, failures_only=True), prefix="")
            if checked.unresolved:
                say("live state the profile cannot resolve (recorded as unknown):", prefix="")
                for line in checked.unresolved:
                    say(f"  {line}", prefix="")
            if checked.gaps and strict:
                raise CommandError(f"--strict: not starting; {checked.gaps} item(s) missing "
                                   f"for tier {tier} (listed above)", 1, label="")
        _run_cancelable(core, sequence, sink)
        sink.raise_if_failed()
    except RecordingError as exc:
        raise CommandError(str(exc)) from exc


def _run_cancelable(core: CMMCorePlus, sequence: MDASequence, sink: RecordingSink) -> None:
    """Run the acquisition on a worker thread, so that Ctrl-C cancels it cleanly.

    Run on the main thread, a KeyboardInterrupt would unwind pymmcore-plus's runner
    mid-event; here it becomes ``core.mda.cancel()`` and the file is finished (status
    'canceled') before the interrupt is passed on. Meanwhile the main thread draws the
    progress bar from :attr:`RecordingSink.progress`.
    """
    failure: list[BaseException] = []
    # Wait on an Event, not Thread.join: on CPython 3.11 a KeyboardInterrupt that lands in
    # join() can mark the still-running thread as stopped (threading's bpo-45274 clean-up
    # releases the thread's own lock), and the rig would then be unloaded mid-event.
    done = threading.Event()

    def run() -> None:
        try:
            core.mda.run(sequence, output=sink)
        except BaseException as exc:  # re-raised on the calling thread below
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=run, name="nbo-acquisition")
    rate = FrameRate()
    with progress_display(f"recording {sink.path.name}", "frames") as update:
        worker.start()
        try:
            finished = False
            while not finished:
                finished = done.wait(_POLL_S)
                now = sink.progress
                update(now.frames_written, now.frames_expected,
                       acquisition_note(now, rate.add(now.frames_written)))
        except KeyboardInterrupt:
            with _insisting_presses(sink.path):
                say(f"interrupted; canceling the acquisition and finishing {sink.path}")
                core.mda.cancel()
                sink.stop_waiting()  # a write-error pause may be holding the last frames
                done.wait()
            raise
    if failure:
        raise failure[0]


@contextmanager
def _insisting_presses(path: Path) -> Iterator[None]:
    """While a canceled acquisition finishes its file: answer more Ctrl-C presses.

    The second press is told what is going on; the third leaves the file as a crash would
    (every written frame is journaled: ``recover`` makes it valid) and ends the process at
    once with exit code 130. ``os._exit``, because the acquisition thread is still inside
    MMCore: unloading the rig under it, or finalising the interpreter around it, is what
    must not happen. A handler rather than KeyboardInterrupt, so that a press between two
    steps of the cancel cannot cut it short. Off the main thread (no signals there) this
    only runs its body.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = [1]

    def pressed(signum: int, frame: FrameType | None) -> None:
        presses[0] += 1
        if presses[0] == 2:
            say(f"still finishing {path}; press Ctrl-C again to leave it unfinished for "
                f"'{PROG} recover {path}'")
            return
        say(f"left {path} unfinished: run '{PROG} recover {path}' to make it a valid file")
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass  # a reader that went away: nothing more to tell it
        os._exit(EXIT_INTERRUPTED)

    signal.signal(signal.SIGINT, pressed)
    try:
        yield
    finally:
        # the file is finished and the process is on its way out with exit code 130: a late
        # press has nothing left to interrupt, and one that lands while the interpreter shuts
        # down would end it by the signal itself instead
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def summarise(path: Path) -> str:
    """A short human summary of what a file records, read back from the file itself."""
    from nbo_recorder.judge.reader import read_outline

    pages, ome = read_outline(path)  # no Planes: a summary of 100,000 frames in seconds
    return summarise_outline(path, pages, ome)


def summarise_outline(path: Path, pages: int, ome: OME) -> str:
    """:func:`summarise` of a file whose outline (page count, OME model) is already read."""
    sa = ome.structured_annotations
    observed = {a.id: {m.k: m.value for m in a.value.ms}
                for a in (sa.map_annotations if sa else [])}
    lines = [f"{path}: {pages} frames in {len(ome.images)} image(s)"]
    status = next((v.get("status") for v in observed.values() if "status" in v), None)
    if status:
        lines.append(f"  acquisition: {status}")
    for inst in ome.instruments:
        parts = [f"{len(inst.objectives)} objectives", f"{len(inst.filters)} filters",
                 f"{len(inst.dichroics)} dichroics", f"{len(inst.detectors)} detectors",
                 f"{len(inst.light_source_group)} light sources"]
        lines.append("  instrument: " + ", ".join(parts))
    for img in ome.images:
        px = img.pixels
        obj = img.objective_settings.id if img.objective_settings else "unknown"
        lines.append(f"  {img.name}: {px.size_c} channels x {px.size_z} z x {px.size_t} t, "
                     f"pixel {px.physical_size_x} µm, objective {obj}")
        for ch in px.channels:
            bits = [f"    channel {ch.name}:"]
            if ch.light_source_settings is not None:
                ls = ch.light_source_settings
                bits.append(f"light {ls.id}" + (f" {ls.wavelength:g} nm" if ls.wavelength else ""))
            if ch.light_path is not None:
                refs = [r.id for r in ch.light_path.excitation_filters]
                refs += [r.id for r in ch.light_path.emission_filters]
                if ch.light_path.dichroic_ref is not None:
                    refs.append(ch.light_path.dichroic_ref.id)
                bits.append("path " + ", ".join(refs))
            if ch.pinhole_size is not None:
                bits.append(f"pinhole {ch.pinhole_size:g} µm")
            if ch.detector_settings is not None:
                ds = ch.detector_settings
                bits.append(f"detector gain {ds.gain} offset {ds.offset} binning "
                            f"{ds.binning.value if ds.binning else None}")
            for ref in ch.annotation_refs:
                for key, value in observed.get(ref.id, {}).items():
                    if key and key.endswith(("power_mw", "intensity_percent")):
                        bits.append(f"{key.split('].')[0].split('[')[1]} {value}")
            lines.append(" ".join(bits))
    return "\n".join(lines)
