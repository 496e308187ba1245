"""Explicit units for every quantity the recorder writes.

Every numeric setting has one canonical unit inside the recorder (power mW, wavelength nm,
length µm, time ms, readout rate MHz, temperature °C, fractions 0–1). Profiles say in which
unit a device property reports its value; :func:`to_canonical` converts on the way in, so
nothing downstream ever guesses a unit.

A hand-written table rather than ``pint``: the recorder needs a dozen fixed, linear
conversions on a per-frame-adjacent path, and pint's registry start-up (~0.5 s) and
per-call overhead buy nothing here.
"""

from __future__ import annotations

from typing import Final

#: Canonical unit per quantity, as written into OME-XML unit attributes.
CANONICAL: Final[dict[str, str]] = {
    "power": "mW",
    "wavelength": "nm",
    "length": "µm",
    "time": "ms",
    "frequency": "MHz",
    "temperature": "°C",
    "fraction": "fraction",
    "percent": "%",
    "dimensionless": "",
    "rotation": "rpm",
}

# unit symbol -> (quantity, factor to the canonical unit); offsets only for temperature.
_FACTORS: Final[dict[str, tuple[str, float]]] = {
    "W": ("power", 1e3),
    "mW": ("power", 1.0),
    "µW": ("power", 1e-3),
    "uW": ("power", 1e-3),
    "nm": ("wavelength", 1.0),
    "m": ("length", 1e6),
    "mm": ("length", 1e3),
    "µm": ("length", 1.0),
    "um": ("length", 1.0),
    "s": ("time", 1e3),
    "ms": ("time", 1.0),
    "µs": ("time", 1e-3),
    "us": ("time", 1e-3),
    "Hz": ("frequency", 1e-6),
    "kHz": ("frequency", 1e-3),
    "MHz": ("frequency", 1.0),
    "°C": ("temperature", 1.0),
    "C": ("temperature", 1.0),
    "fraction": ("fraction", 1.0),
    "%": ("percent", 1.0),
    "": ("dimensionless", 1.0),
    "rpm": ("rotation", 1.0),
}

KNOWN_UNITS: Final[frozenset[str]] = frozenset(_FACTORS)

# the further length and time units an OME file may use (read, never written by the recorder)
_OME_FACTORS: Final[dict[str, tuple[str, float]]] = {
    "cm": ("length", 1e4), "pm": ("length", 1e-6), "Å": ("length", 1e-4),
    "ns": ("time", 1e-6), "min": ("time", 6e4), "h": ("time", 3.6e6),
}


class UnitError(ValueError):
    """A unit the recorder does not know, or one that does not fit the quantity."""


def quantity_of(unit: str) -> str:
    """Return the quantity a unit measures (``"mW"`` -> ``"power"``)."""
    try:
        return _FACTORS[unit][0]
    except KeyError:
        raise UnitError(f"unknown unit {unit!r}; known units: {sorted(KNOWN_UNITS)}") from None


def to_canonical(value: float, unit: str) -> float:
    """Convert ``value`` given in ``unit`` to the canonical unit of its quantity."""
    quantity_of(unit)
    return value * _FACTORS[unit][1]


def canonical_unit(unit: str) -> str:
    """The canonical unit of the quantity ``unit`` measures (``"W"`` -> ``"mW"``)."""
    return CANONICAL[quantity_of(unit)]


def convert(value: float, unit: str, target: str) -> float:
    """``value`` in ``unit`` expressed in ``target`` (both of one quantity; a wavelength is a
    length, so ``nm`` and ``µm`` convert into each other). Rounded to 12 significant digits,
    so ``0.5 µm`` is ``500 nm``, not ``500.00000000000006``."""
    if unit == target:
        return value

    def length_based(symbol: str) -> tuple[str, float]:
        quantity, factor = _OME_FACTORS.get(symbol) or _FACTORS.get(symbol) or ("", 0.0)
        if not quantity:
            raise UnitError(f"unknown unit {symbol!r}; known units: "
                            f"{sorted(KNOWN_UNITS | set(_OME_FACTORS))}")
        if quantity == "wavelength":  # nm: 1e-3 µm
            return "length", factor * 1e-3
        return quantity, factor

    (have, to_base), (want, from_base) = length_based(unit), length_based(target)
    if have != want:
        raise UnitError(f"cannot convert {unit!r} ({have}) to {target!r} ({want})")
    return float(f"{value * to_base / from_base:.12g}")


def percent_to_fraction(percent: float) -> float:
    """OME's PercentFraction is 0–1; devices mostly report 0–100 %."""
    return percent / 100.0
