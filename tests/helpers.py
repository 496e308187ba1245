"""Reading recorded files back the way a user would, for assertions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ome_types import OME, from_xml

from nbo_recorder.read.reader import read_ome_xml

REPO = Path(__file__).resolve().parent.parent
DEMO_PROFILE = REPO / "hardware_profiles" / "mm_demo.yaml"


@dataclass
class PlaneView:
    """One plane with the settings a reader would conclude were in force for it."""

    image: int
    t: int
    c: int
    z: int
    ifd: int
    channel: str | None
    settings: dict[str, str]


def annotations(ome: OME) -> dict[str, dict[str, str]]:
    sa = ome.structured_annotations
    out: dict[str, dict[str, str]] = {}
    for ann in sa.map_annotations if sa else []:
        out[ann.id] = {m.k: m.value for m in ann.value.ms if m.k is not None}
    return out


def load(path: Path) -> tuple[str, OME]:
    xml = read_ome_xml(path)
    return xml, from_xml(xml)


def planes(ome: OME) -> list[PlaneView]:
    """Per plane: channel-level settings overlaid with the plane's own annotation."""
    anns = annotations(ome)
    views = []
    for i, img in enumerate(ome.images):
        px = img.pixels
        ifd = {(td.first_t, td.first_c, td.first_z): td.ifd for td in px.tiff_data_blocks}
        objective = img.objective_settings.id.split(":", 1)[1] if img.objective_settings else ""
        for pl in px.planes:
            ch = px.channels[pl.the_c]
            settings: dict[str, str] = {"objective": objective,
                                        "pixel_size_um": repr(px.physical_size_x)}
            for ref in ch.annotation_refs:
                settings.update(anns[ref.id])
            settings["objective"] = objective
            for ref in pl.annotation_refs:
                settings.update(anns[ref.id])
            views.append(PlaneView(i, pl.the_t, pl.the_c, pl.the_z,
                                   ifd[(pl.the_t, pl.the_c, pl.the_z)], ch.name, settings))
    return views
