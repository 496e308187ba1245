"""pytest plugin ``nbo``: the rig conformance suite as pytest items, plus fixtures for own tests.

In a manufacturer's or facility's repository::

    pytest --nbo-config rig.cfg --nbo-profile rig.yaml [--nbo-tier 1] [--nbo-allow-unsafe] \\
        --junitxml=conformance.xml

adds one item per conformance check (:mod:`nbo_recorder.conformance.suite`), with node ids like
``nbo-conformance::Emission::Label=Chroma-HQ535[direct]``, so ``-k``, ``--junitxml`` and CI
work as for any test. The items are added to whatever else is collected; ``-k "not
nbo-conformance"`` leaves them out. Fixtures for your own tests against the same loaded rig:

* ``nbo_core`` — the loaded core (``UniMMCore``), shared by the whole session;
* ``nbo_profile`` — the :class:`~nbo_recorder.profile.model.Profile`;
* ``nbo_acquire(frames=1, sequence=None)`` — acquire through the recorder into a temporary
  file and return it read back
  (:class:`~nbo_recorder.conformance.readback.ReadBack`: ``frames[i].settings``
  and ``frames[i].ome`` per frame).

Without any ``--nbo-*`` option the plugin is inert: it adds no items, imports nothing beyond
pytest, and its fixtures skip the tests that ask for them. One rig serves one pytest process:
do not distribute these items over pytest-xdist workers.
"""

from __future__ import annotations

import gc
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from pymmcore_plus import CMMCorePlus
    from useq import MDASequence

    from nbo_recorder.conformance.readback import ReadBack
    from nbo_recorder.conformance.results import PlannedCheck
    from nbo_recorder.conformance.suite import ConformanceSuite
    from nbo_recorder.profile.model import Profile

#: node id of the collector that holds every conformance item
SUITE_NODE = "nbo-conformance"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the --nbo-* options (the only thing the plugin does when none is given)."""
    group = parser.getgroup("nbo", "nbo-recorder rig conformance")
    group.addoption("--nbo-config", metavar="CFG",
                    help="Micro-Manager configuration of the rig to check: 'demo' or a .cfg "
                         "path (enables the conformance items and the nbo_* fixtures)")
    group.addoption("--nbo-profile", metavar="PROFILE.yaml",
                    help="hardware profile of the rig (needed with --nbo-config)")
    group.addoption("--nbo-tier", type=int, metavar="N",
                    help="also check the profile has every MUST attribute of NBO tier N (1-3)")
    group.addoption("--nbo-allow-unsafe", action="store_true", default=False,
                    help="let the checks switch light-source emission on and set powers above "
                         "the profile's power_cap_mw")


class _Rig:
    """The rig under test for one pytest session: loaded on first use, unloaded at the end."""

    def __init__(self, mm_config: str, profile: Path, tier: int | None,
                 allow_unsafe: bool) -> None:
        self.mm_config = mm_config
        self.profile_path = profile
        self.tier = tier
        self.allow_unsafe = allow_unsafe
        self._suite: ConformanceSuite | None = None

    @property
    def suite(self) -> ConformanceSuite:
        if self._suite is None:
            from nbo_recorder.conformance.suite import ConformanceSuite
            from nbo_recorder.profile.errors import ProfileError
            from nbo_recorder.render.nbo_checks import load_checked_profile
            from nbo_recorder.rig import RigError, load_core

            try:
                profile = load_checked_profile(self.profile_path)
                core = load_core(self.mm_config)
            except (ProfileError, RigError) as exc:
                raise pytest.UsageError(f"--nbo-config/--nbo-profile: {exc}") from None
            self._suite = ConformanceSuite(core, profile, allow_unsafe=self.allow_unsafe,
                                           tier=self.tier)
        return self._suite

    def close(self) -> None:
        """Restore what the checks moved and unload the devices.

        The core is also released here: MMCore aborts the interpreter at exit when a core whose
        devices were unloaded is still alive then.
        """
        suite, self._suite = self._suite, None
        if suite is None:
            return
        from nbo_recorder.rig import release_core

        suite.finish()
        release_core(suite.core)
        del suite
        gc.collect()


_RIG = pytest.StashKey[_Rig]()


def pytest_configure(config: pytest.Config) -> None:
    """Check the --nbo-* options go together; the rig itself is loaded at collection."""
    mm_config = config.getoption("nbo_config")
    profile = config.getoption("nbo_profile")
    tier = config.getoption("nbo_tier")
    allow_unsafe = bool(config.getoption("nbo_allow_unsafe"))
    if mm_config is None and profile is None and tier is None and not allow_unsafe:
        return
    if mm_config is None or profile is None:
        raise pytest.UsageError("--nbo-config and --nbo-profile are needed together (the rig's "
                                "Micro-Manager configuration and its hardware profile)")
    if tier is not None and tier not in (1, 2, 3):
        raise pytest.UsageError(f"--nbo-tier must be 1, 2 or 3, not {tier}")
    config.stash[_RIG] = _Rig(str(mm_config), Path(profile).resolve(), tier, allow_unsafe)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the rig under test (and whether unsafe checks are allowed) in the header."""
    rig = config.stash.get(_RIG, None)
    if rig is None:
        return []
    mode = "UNSAFE (emission and powers above the cap allowed)" if rig.allow_unsafe else "safe"
    return [f"nbo: rig {rig.mm_config}, profile {rig.profile_path}, {mode}"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Append the conformance items (first, so that -k and -m apply to them too).

    They are collected through ``session.genitems``, so collection reports, counts and
    ``--collect-only`` include them as for any other test.
    """
    rig = config.stash.get(_RIG, None)
    if rig is None:
        return
    rig.suite.plan()  # loads the rig now: an unusable one is a usage error, not a test error
    suite = NboSuite.from_parent(session, name=SUITE_NODE, nodeid=SUITE_NODE,
                                 path=rig.profile_path, rig=rig)
    items.extend(session.genitems(suite))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Put back what the checks moved and unload the rig."""
    rig = session.config.stash.get(_RIG, None)
    if rig is not None:
        rig.close()


class NboSuite(pytest.Collector):
    """Every conformance check of the rig, one :class:`NboDevice` per device."""

    def __init__(self, *, rig: _Rig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rig = rig

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        by_device: dict[str, list[PlannedCheck]] = {}
        for check in self.rig.suite.plan():
            by_device.setdefault(check.device, []).append(check)
        return [NboDevice.from_parent(self, name=device, rig=self.rig, checks=checks)
                for device, checks in by_device.items()]


class NboDevice(pytest.Collector):
    """The checks of one device (JUnit classname ``nbo-conformance.<device>``)."""

    def __init__(self, *, rig: _Rig, checks: list[PlannedCheck], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rig = rig
        self.checks = checks

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        return [NboCheck.from_parent(self, name=check.name, rig=self.rig, check=check)
                for check in self.checks]


class NboCheck(pytest.Item):
    """One conformance check; fails with the check's message, skips what was not tried."""

    def __init__(self, *, rig: _Rig, check: PlannedCheck, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rig = rig
        self.check = check

    def runtest(self) -> None:
        """Run the check; its details go to the JUnit properties of the test case."""
        result = self.rig.suite.run_check(self.check)
        for key, value in (("recorded", result.recorded), ("expected", result.expected),
                           ("event", result.event), ("latency_ms", result.latency_ms)):
            if value not in (None, ""):
                self.user_properties.append((key, value))
        if result.status == "skip":
            pytest.skip(result.message)
        if result.status == "fail":
            pytest.fail(result.message, pytrace=False)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the check comes from: the profile file."""
        return self.path, None, f"{SUITE_NODE} {self.check.device} {self.name}"


def _rig(request: pytest.FixtureRequest) -> _Rig:
    rig = request.config.stash.get(_RIG, None)
    if rig is None:
        pytest.skip("no rig to test: pass --nbo-config and --nbo-profile")
    return rig


@pytest.fixture(scope="session")
def nbo_core(request: pytest.FixtureRequest) -> CMMCorePlus:
    """The rig's loaded core (``UniMMCore``), shared with the conformance items."""
    return _rig(request).suite.core


@pytest.fixture(scope="session")
def nbo_profile(request: pytest.FixtureRequest) -> Profile:
    """The rig's hardware profile."""
    return _rig(request).suite.profile


@pytest.fixture
def nbo_acquire(
    nbo_core: CMMCorePlus, nbo_profile: Profile, tmp_path: Path
) -> Callable[..., ReadBack]:
    """``acquire(frames=1, sequence=None)``: record through the recorder, return it read back."""
    from nbo_recorder.conformance.readback import acquire

    counter = itertools.count()

    def _acquire(frames: int = 1, sequence: MDASequence | None = None) -> ReadBack:
        path = tmp_path / f"nbo-acquire-{next(counter)}.ome.tif"
        return acquire(nbo_core, nbo_profile, path, frames=frames, sequence=sequence)

    return _acquire
