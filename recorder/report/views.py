"""What the report page shows, as plain data: the template draws these and nothing else.

Every value carries how it is known: ``value`` is the text the file holds (None when the
file says it is unknown or holds nothing), ``reason`` why it is missing. The page shows a
missing value as such, with the reason on hover, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: a part of the light path: its value(s) known, recorded as unknown, or not in the path
PART_STATES = ("known", "unknown", "none")


@dataclass(frozen=True)
class Field:
    """One recorded value: ``name`` is its stable key (the page's ``data-field``), ``label``
    how the page names it, ``text`` what it shows (value with unit), ``value`` the value as
    the file writes it (the page's ``data-value``; None when not known) and ``reason`` why
    it is not known."""

    name: str
    label: str
    text: str
    value: str | None = None
    reason: str | None = None


def known_field(name: str, label: str, value: object, unit: str = "") -> Field:
    """A field holding ``value`` (its text followed by ``unit``)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return Field(name, label, f"{text} {unit}".strip(), str(value))


def unknown_field(name: str, label: str, reason: str) -> Field:
    """A field the file does not hold, with the reason."""
    return Field(name, label, "unknown", None, reason)


@dataclass(frozen=True)
class Component:
    """A component in a part of the path (``id`` as the file names it, ``""`` for values
    the channel holds without a component), with its recorded values."""

    id: str
    name: str
    fields: tuple[Field, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class Part:
    """One stage of a channel's light path (``kind``: ``light-source``, ``excitation-filter``,
    ``dichroic``, ``objective``, ``pinhole``, ``emission-filter``, ``detector``)."""

    kind: str
    label: str
    state: str
    components: tuple[Component, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class Mark:
    """One mark on a channel's spectral strip: a ``line`` at ``lo_nm`` (a light source), a
    ``band`` from ``lo_nm`` to ``hi_nm`` (either may be None: open on that side) or
    ``unknown`` (nothing to draw; ``reason`` says why). ``x``/``width`` place it on the
    shared axis (SVG units), ``colour`` tints it as light of its wavelength looks."""

    row: str
    kind: str
    component: str
    label: str
    lo_nm: float | None = None
    hi_nm: float | None = None
    reason: str | None = None
    x: float = 0.0
    width: float = 0.0
    open_left: bool = False
    open_right: bool = False
    colour: str = "#888888"


@dataclass(frozen=True)
class ChannelView:
    """A channel of an image: its path, drawn left to right, and its spectral marks."""

    id: str
    image: int
    index: int
    name: str
    fluor: str | None
    mode: str | None
    parts: tuple[Part, ...]
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class InstrumentRow:
    """A component of the instrument: its kind, name, specifications and where they come
    from (the profile's stated source, recorded in the NBO record)."""

    id: str
    kind: str
    name: str
    specs: tuple[str, ...]
    source: str | None


@dataclass(frozen=True)
class MissingRow:
    """A MUST attribute or element missing at the chosen tier (``count`` rows alike)."""

    tier: int
    extension: str
    element: str
    attribute: str
    path: str
    status: str
    reason: str
    count: int = 1


@dataclass(frozen=True)
class MissingGroup:
    """The missing MUST items of one component (or one Image / channel / its planes)."""

    component: str
    rows: tuple[MissingRow, ...]


@dataclass(frozen=True)
class Compliance:
    """The verdicts per tier and extension, and what is missing at the chosen tier."""

    tier: int
    tiers: tuple[int, ...]
    extensions: tuple[str, ...]
    verdicts: dict[str, dict[str, bool]]
    passed: bool
    graded: str
    missing: tuple[MissingGroup, ...]
    schema_errors: tuple[str, ...]


@dataclass(frozen=True)
class Segment:
    """A run of planes of one channel holding the same value of a setting."""

    x: float
    width: float
    text: str
    shade: int
    unknown: bool
    first_plane: int
    last_plane: int
    start_s: float | None


@dataclass(frozen=True)
class Track:
    """A setting that changed during the run in one channel, plane after plane; ``values``
    are the values in the order they followed each other (an unknown one as ``unknown``:
    its reason is on its segment)."""

    image: int
    channel: str
    setting: str
    segments: tuple[Segment, ...]
    values: tuple[str, ...]


@dataclass(frozen=True)
class RunView:
    """How the run went: its status, frame counts, pauses and the settings that changed."""

    status: str | None
    complete: bool
    facts: tuple[tuple[str, str], ...]
    events: tuple[tuple[str, str], ...]
    tracks: tuple[Track, ...]
    width: float


@dataclass
class Report:
    """Everything the page shows of one file."""

    file: str
    name: str
    creator: str | None
    has_nbo: bool
    images: tuple[str, ...]
    channels: tuple[ChannelView, ...]
    axis: tuple[float, float]
    ticks: tuple[tuple[float, int], ...]
    instrument: tuple[InstrumentRow, ...]
    compliance: Compliance
    run: RunView
    methods: str
    methods_missing: tuple[str, ...]
    missing: list[str] = field(default_factory=list)
