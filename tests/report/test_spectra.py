"""The wavelength axis of the report's spectral strips: where lines and bands land."""

from __future__ import annotations

import pytest

from nbo_recorder.report.spectra import Axis, axis_for, band


def test_the_axis_maps_wavelengths_linearly_and_clamps_at_its_ends():
    axis = Axis(400.0, 700.0, width=300.0)
    assert [axis.x(w) for w in (400.0, 488.0, 550.0, 700.0)] == [0.0, 88.0, 150.0, 300.0]
    assert (axis.x(350.0), axis.x(800.0)) == (0.0, 300.0)
    assert axis.ticks(100.0) == [(0.0, 400), (100.0, 500), (200.0, 600), (300.0, 700)]


def test_the_axis_covers_every_wavelength_with_a_margin_rounded_to_50_nm():
    assert (axis_for([488.0, 500.0, 653.5]).lo_nm, axis_for([488.0, 653.5]).hi_nm) == (
        450.0, 700.0)
    assert (axis_for([]).lo_nm, axis_for([]).hi_nm) == (350.0, 750.0)  # nothing stated


@pytest.mark.parametrize(("cut_in", "cut_out", "expected"), [
    (500.0, 550.0, (100.0, 50.0, False, False)),   # band-pass 525/50
    (568.0, None, (168.0, 132.0, False, True)),    # long-pass: to the axis's end
    (None, 450.0, (0.0, 50.0, True, False)),       # short-pass: from the axis's start
])
def test_a_band_spans_its_cut_in_to_its_cut_out(cut_in, cut_out, expected):
    geometry = band(Axis(400.0, 700.0, width=300.0), cut_in, cut_out)
    assert geometry is not None
    assert (geometry.x, geometry.width, geometry.open_left, geometry.open_right) == expected


def test_a_band_with_no_edge_is_not_drawn():
    assert band(Axis(400.0, 700.0), None, None) is None
