"""``nbo-recorder conformance``: run the rig conformance suite, print a report, write JUnit XML.

Wired into the main CLI by :func:`add_conformance_command`. Exit code 0 when every check
passes, 1 when one fails, 2 when the configuration, profile or options are unusable (nothing
was moved then). On a terminal a progress bar counts the checks done; ``--verbose`` prints
every check as it completes.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nbo_recorder.cli.console import (
    EXIT_BAD_INPUT,
    PROG,
    aligned_rows,
    progress_display,
    say,
)
from nbo_recorder.rig import RigError
from nbo_recorder.store.formats import FORMAT_SUFFIXES, OutputFormat

if TYPE_CHECKING:
    from nbo_recorder.conformance.results import CheckResult, ConformanceReport

#: widest "values tried" cell before it is shortened
_VALUES_WIDTH = 44
#: what conformance errors start with
_PREFIX = f"{PROG} conformance"


def add_conformance_command(app: typer.Typer) -> None:
    """Add the ``conformance`` command to the ``nbo-recorder`` command group."""
    app.command(
        "conformance",
        short_help="check that every bound device setting is recorded exactly (rig conformance)",
        help="Move every bound device through a safe set of values, acquire one frame per "
             "value (set directly and through a config group) and check the file records "
             "exactly that value. Also reports which devices change silently (no "
             "propertyChanged event), read latencies and the profile's NBO tier.",
    )(conformance)


def conformance(
    mm_config: Annotated[str, typer.Option(
        "--mm-config", metavar="CFG",
        help="'demo' (MMConfig_demo.cfg from mm-test-adapters) or a .cfg path")],
    profile: Annotated[str, typer.Option(
        "--profile", metavar="PROFILE.yaml", help="hardware profile YAML")],
    tier: Annotated[int | None, typer.Option(
        "--tier", metavar="N", min=1, max=3, show_default="no tier check",
        help="also check the profile has every MUST attribute of this NBO tier")] = None,
    junit: Annotated[Path | None, typer.Option(
        "--junit", metavar="OUT.xml", show_default="no JUnit file",
        help="write the results as JUnit XML")] = None,
    allow_unsafe: Annotated[bool, typer.Option(
        "--allow-unsafe", help="also switch light-source emission on and set powers above the "
                               "profile's power_cap_mw (stages still stay inside "
                               "min_um/max_um)")] = False,
    verbose: Annotated[bool, typer.Option(
        "-v", "--verbose", help="print every check as it completes (to stderr)")] = False,
    output_format: Annotated[OutputFormat, typer.Option(
        "--format", help="what each check records to and reads back: "
                         + ", ".join(f"{n} ({s})" for n, s in FORMAT_SUFFIXES.items()))
    ] = "ome-tiff",
) -> int:
    """Run the suite; the exit code (0 all passed, 1 a check failed, 2 unusable input)."""
    from nbo_recorder.conformance.suite import run_conformance

    if junit is not None and not junit.parent.is_dir():
        say(f"error: {junit}: directory {junit.parent} does not exist", prefix=_PREFIX)
        return EXIT_BAD_INPUT
    t0 = time.perf_counter()
    with progress_display("conformance", "checks") as update:
        done = 0

        def progress(result: CheckResult, planned: int) -> None:
            nonlocal done
            done += 1
            if verbose:
                say(f"  {result.status.upper():4} {result.name}", prefix="")
            update(done, planned, f"{result.device}.{result.prop}")

        try:
            report = run_conformance(mm_config, profile, tier=tier, allow_unsafe=allow_unsafe,
                                     output_format=output_format, progress=progress)
        except (RigError, ValueError) as exc:
            say(f"error: {exc}", prefix=_PREFIX)
            return EXIT_BAD_INPUT
    elapsed = time.perf_counter() - t0
    print(format_report(report, elapsed))
    if junit is not None:
        try:
            write_junit(report, junit)
        except OSError as exc:
            say(f"error: cannot write {junit}: {exc}", prefix=_PREFIX)
            return EXIT_BAD_INPUT
    return 0 if report.ok else 1


def _cell(values: tuple[str, ...]) -> str:
    text = ", ".join(values)
    if len(text) <= _VALUES_WIDTH:
        return text
    shown: list[str] = []
    for v in values:
        if len(", ".join([*shown, v])) > _VALUES_WIDTH - 8:
            break
        shown.append(v)
    return ", ".join(shown) + f", … (+{len(values) - len(shown)})"


def format_report(report: ConformanceReport, elapsed_s: float | None = None) -> str:
    """The human report: one row per bound property, then silent devices, tier, failures."""
    mode = ("UNSAFE: emission and powers above the cap allowed" if report.allow_unsafe
            else "safe: emission never switched on, power <= power_cap_mw (0 mW if unset)")
    lines = [f"nbo-recorder conformance: rig {report.rig}, profile {report.profile} ({mode})", ""]
    header = ("device", "property", "values tried", "recorded", "events (direct)",
              "events (config)", "read ms")
    rows = []
    for s in report.summaries():
        recorded = f"{s.recorded_ok}/{s.recorded_total}" if s.recorded_total else "-"
        if s.other_failures:
            recorded += " + " + ", ".join(f"{m} FAIL" for m in s.other_failures)
        latency = f"{s.latency_ms:.3f}" if s.latency_ms is not None else "-"
        rows.append((s.device, s.prop, _cell(s.values) or "-", recorded, s.events_direct,
                     s.events_config, latency))
    lines += aligned_rows(header, rows)
    silent = report.silent()
    lines.append("")
    if silent:
        lines.append("Changed silently (no propertyChanged; fine, the recorder reads them "
                     "explicitly):")
        for device, prop, how in silent:
            way = "set directly" if how == "direct" else "set through a config group"
            lines.append(f"  {device}.{prop} ({way})")
    else:
        lines.append("Every tested change was announced by propertyChanged.")
    tier = report.tier
    if tier.note:
        lines.append(f"NBO tier: {tier.note}")
    else:
        text = (f"NBO tier: the profile reaches tier {tier.reached}" if tier.reached else
                "NBO tier: the profile does not reach tier 1 (`nbo-recorder profile check "
                "PROFILE --tier 1` lists what is missing)")
        if tier.requested is not None:
            text += (f"; tier {tier.requested}: " + (f"{len(tier.missing)} MUST attribute(s) "
                     "missing (see the failure below)" if tier.missing else "complete"))
        lines.append(text)
    failures = report.failures
    skipped = [r for r in report.results if r.status == "skip"]
    if failures:
        lines += ["", f"Failed ({len(failures)}):"]
        lines += [f"  {r.name}: {r.message}" for r in failures]
    if skipped:
        lines += ["", f"Not tried ({len(skipped)}):"]
        lines += [f"  {r.name}: {r.message}" for r in skipped]
    if report.notes:
        lines += ["", "Notes:"] + [f"  {n}" for n in report.notes]
    passed = sum(r.status == "pass" for r in report.results)
    took = f" in {elapsed_s:.1f} s" if elapsed_s is not None else ""
    lines += ["", f"{len(report.results)} checks{took}: {passed} passed, {len(failures)} "
                  f"failed, {len(skipped)} not tried"]
    return "\n".join(lines)


def write_junit(report: ConformanceReport, path: Path) -> None:
    """JUnit XML: one testcase per check (classname ``nbo-conformance.<device>``)."""
    results = report.results
    suite = ET.Element("testsuite", {
        "name": "nbo-conformance",
        "tests": str(len(results)),
        "failures": str(sum(r.status == "fail" for r in results)),
        "errors": "0",
        "skipped": str(sum(r.status == "skip" for r in results)),
        "time": f"{sum(r.duration_s for r in results):.3f}",
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("rig", report.rig), ("profile", report.profile),
                        ("allow_unsafe", str(report.allow_unsafe).lower())):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for r in results:
        name = r.name.split(".", 1)[1] if r.name.startswith(f"{r.device}.") else r.name
        case = ET.SubElement(suite, "testcase", {
            "classname": f"nbo-conformance.{r.device}", "name": name,
            "time": f"{r.duration_s:.3f}",
        })
        if r.status == "fail":
            ET.SubElement(case, "failure", {"message": r.message}).text = r.message
        elif r.status == "skip":
            ET.SubElement(case, "skipped", {"message": r.message})
        details = [f"{k}: {v}" for k, v in (("expected", r.expected), ("recorded", r.recorded),
                                            ("event", r.event), ("latency_ms", r.latency_ms))
                   if v not in (None, "")]
        if details:
            ET.SubElement(case, "system-out").text = "\n".join(details)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
