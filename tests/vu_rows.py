"""One manifest row of a test VU: the columns ``VUDataset.from_units`` needs, at a synthetic position."""

from __future__ import annotations


def vu_row(
    patient_id: str,
    level: str,
    *,
    region: str | None = None,
    spacing_mm: float = 1.0,
    slice_mm: float = 2.0,
    crop_mm: float = 32.0,
) -> dict[str, object]:
    """A row of patient ``patient_id`` at disc ``level`` (region: the level's first letter), from ``<patient>.nii.gz``,
    centred at the origin."""
    return dict(patient_id=patient_id, level=level, region=region or level[0], source=f"{patient_id}.nii.gz",
                center_vox_0=0, center_vox_1=0, center_vox_2=0, center_world_x=0, center_world_y=0, center_world_z=0,
                spacing_mm=spacing_mm, slice_mm=slice_mm, crop_mm=crop_mm)
