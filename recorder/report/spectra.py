"""The geometry of the spectral drawing: one wavelength axis shared by every channel.

Each channel of the report gets a strip of rows drawn against the same axis (nm), so the
bands of two channels can be compared by eye: a light source as a vertical line at its
wavelength, each filter or dichroic as a bar over its transmission band. This module only
computes numbers (positions in SVG user units); the template draws them.

A band open on one side (a long-pass filter records a cut-in only) runs to the axis's end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

#: the axis when nothing in the file states a wavelength (visible light, nm)
DEFAULT_RANGE_NM = (350.0, 750.0)
#: SVG user units the axis spans
AXIS_WIDTH = 600.0
#: SVG user units left of the axis, for the row labels
LABEL_WIDTH = 120.0
#: height of one row of the strip
ROW_HEIGHT = 18.0


@dataclass(frozen=True)
class Axis:
    """A linear wavelength axis from ``lo_nm`` to ``hi_nm`` drawn over ``width`` units."""

    lo_nm: float
    hi_nm: float
    width: float = AXIS_WIDTH

    def x(self, nm: float) -> float:
        """Where ``nm`` lies on the axis (clamped to its ends), in SVG units from its start."""
        fraction = (nm - self.lo_nm) / (self.hi_nm - self.lo_nm)
        return round(min(max(fraction, 0.0), 1.0) * self.width, 2)

    def ticks(self, step_nm: float = 50.0) -> list[tuple[float, int]]:
        """(x, wavelength) of a tick every ``step_nm`` inside the axis."""
        first = math.ceil(self.lo_nm / step_nm) * step_nm
        count = int((self.hi_nm - first) // step_nm) + 1
        return [(self.x(first + i * step_nm), int(first + i * step_nm)) for i in range(count)]


def axis_for(wavelengths_nm: Iterable[float], margin_nm: float = 30.0,
             step_nm: float = 50.0) -> Axis:
    """The axis covering every wavelength given, widened by ``margin_nm`` on each side and
    rounded out to whole ``step_nm``; :data:`DEFAULT_RANGE_NM` when none is given."""
    values = [w for w in wavelengths_nm if math.isfinite(w) and w > 0]
    if not values:
        return Axis(*DEFAULT_RANGE_NM)
    lo = math.floor((min(values) - margin_nm) / step_nm) * step_nm
    hi = math.ceil((max(values) + margin_nm) / step_nm) * step_nm
    return Axis(max(lo, 0.0), hi)


@dataclass(frozen=True)
class BandGeometry:
    """A bar from ``x`` spanning ``width`` units; ``open_left``/``open_right`` when the band
    has no recorded edge on that side (it is drawn to the axis end)."""

    x: float
    width: float
    open_left: bool
    open_right: bool


def band(axis: Axis, cut_in_nm: float | None, cut_out_nm: float | None) -> BandGeometry | None:
    """The bar of a transmission band from ``cut_in_nm`` to ``cut_out_nm`` (None: no edge on
    that side); None when neither edge is known."""
    if cut_in_nm is None and cut_out_nm is None:
        return None
    left = axis.x(cut_in_nm) if cut_in_nm is not None else 0.0
    right = axis.x(cut_out_nm) if cut_out_nm is not None else axis.width
    return BandGeometry(left, round(max(right - left, 1.0), 2),
                        cut_in_nm is None, cut_out_nm is None)


def wavelength_colour(nm: float | None) -> str:
    """An sRGB colour (``#rrggbb``) that looks like light of ``nm`` (grey outside 380-780 nm
    or when not known), to tint a band or line by where it lies in the spectrum.

    The piecewise-linear approximation of visible colours by Dan Bruton (1996), dimmed towards
    the ends of the visible range where the eye is less sensitive.
    """
    if nm is None or not 380.0 <= nm <= 780.0:
        return "#888888"
    stops = ((380.0, 440.0, lambda f: (1 - f, 0.0, 1.0)), (440.0, 490.0, lambda f: (0.0, f, 1.0)),
             (490.0, 510.0, lambda f: (0.0, 1.0, 1 - f)), (510.0, 580.0, lambda f: (f, 1.0, 0.0)),
             (580.0, 645.0, lambda f: (1.0, 1 - f, 0.0)), (645.0, 781.0, lambda f: (1.0, 0.0, 0.0)))
    for lo, hi, shade in stops:
        if lo <= nm < hi:
            r, g, b = shade((nm - lo) / (hi - lo))
            break
    if nm < 420.0:
        dim = 0.3 + 0.7 * (nm - 380.0) / 40.0
    elif nm > 700.0:
        dim = 0.3 + 0.7 * (780.0 - nm) / 80.0
    else:
        dim = 1.0
    return "#" + "".join(f"{round(255 * (v * dim) ** 0.8):02x}" for v in (r, g, b))
