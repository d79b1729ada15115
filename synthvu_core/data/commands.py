"""CLI subcommands ``data build``, ``data show`` and ``phantom`` (argparse only at import time)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from synthvu_core import names

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build and inspect VU datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    build = dsub.add_parser("build", help="cut VUs out of NIfTI volumes (or a phantom cohort) into a dataset folder")
    src = build.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", metavar="DIR", help="folder(s) holding image + label NIfTI pairs")
    src.add_argument("--phantom", type=int, metavar="N", help="build from N procedural phantom patients instead")
    build.add_argument("--out", required=True, metavar="DATASET", help="dataset folder to write (atomically)")
    build.add_argument("--force", action="store_true",
                       help="replace --out even where it exists and is not a VU dataset folder (default: refuse)")
    build.add_argument("--image-glob", default=names.IMAGE_GLOB, help="image file pattern (default: %(default)s)")
    build.add_argument("--label-glob", default=names.LABEL_GLOB, help="label-map file pattern (default: %(default)s)")
    build.add_argument("--patient-regex", default=names.PATIENT_REGEX,
                       help="patient id from the image file name (group 'patient'; default: %(default)s)")
    build.add_argument("--mapping", default=None,
                       help="label mapping: JSON file or '1=L1,2=L2,...' (source label -> VerSe code or name)")
    build.add_argument("--sources", default=None, metavar="FILE.csv",
                       help="sidecar CSV (columns image, source) naming each image's source: scanner, site or "
                            "sequence (default: each image's folder name)")
    build.add_argument("--clinical", default=None, metavar="FILE.csv",
                       help="per-patient clinical table to join (a patient_id column; numeric, categorical and "
                            "per-level columns such as grade_L4/L5); every bad row, unknown patient or column mixing "
                            "numbers and text is named (default: none; a phantom build writes its own ground truth)")
    build.add_argument("--harmonise", choices=("nyul", "none"), default="nyul",
                       help="intensity harmonisation between sources: Nyul histogram standardisation onto the "
                            "sources' mean percentiles, or none (default: %(default)s)")
    build.add_argument("--unit", choices=names.UNIT_KINDS, default=names.UNIT_KINDS[0],
                       help="vu: slices of a disc-sized field (the study's); subvolume: an isotropic 3-D block of "
                            "--size D,H,W voxels of --spacing mm around each disc (default: %(default)s)")
    build.add_argument("--spacing", type=float, default=None, metavar="MM",
                       help="sub-volume voxel size in mm (with --unit subvolume; default 1)")
    build.add_argument("--slices", type=int, default=names.VU_SLICES,
                       help="parasagittal slices per VU (default: %(default)s)")
    build.add_argument("--size", default=None,
                       help=f"VU: in-plane pixels, H or HxW (default {names.VU_SIZE}); sub-volume: D,H,W voxels "
                            "(left-right, superior-inferior, anterior-posterior; default 32,128,128)")
    build.add_argument("--slice-mm", type=float, default=names.VU_SLICE_MM,
                       help="distance between slices in mm (default: %(default)s)")
    build.add_argument("--fov-factor", type=float, default=names.VU_FOV_FACTOR,
                       help="field of view / centroid distance (default: %(default)s)")
    build.add_argument("--fixed-mm", type=float, default=None,
                       help="fixed in-plane field of view in mm instead of --fov-factor")
    build.add_argument("--mode", choices=names.VU_MODES, default=names.VU_MODES[0],
                       help="centre on discs (VUs) or on bodies (default: %(default)s)")
    build.add_argument("--no-align", action="store_true",
                       help="keep the world's superior axis vertical instead of the centroid line")
    build.add_argument("--split", default=",".join(str(r) for r in names.SPLIT_RATIOS),
                       help="patient-wise train,holdout,reference ratios (default: %(default)s)")
    build.add_argument("--split-seed", type=int, default=0, help="seed of the patient split (default: %(default)s)")
    build.add_argument("--no-stratify", action="store_true",
                       help="split patients by a plain seeded permutation instead of giving every part its share of "
                            "each source and set of levels")
    build.add_argument("--seed", type=int, default=0, help="phantom seed (with --phantom; default: %(default)s)")
    build.add_argument("--contrast", choices=("T1", "T2"), default="T2", help="phantom contrast (with --phantom)")
    build.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    build.add_argument("--skip-bad", action="store_true",
                       help="skip unreadable or invalid pairs and list them in the card")
    build.set_defaults(func=_build)

    show = dsub.add_parser("show", help="counts of a dataset; --json prints its card, --montage draws VUs per level")
    show.add_argument("dataset", metavar="DATASET", help="dataset folder")
    show.add_argument("--json", action="store_true", help="print the dataset card as JSON")
    show.add_argument("--montage", metavar="FILE.png", default=None, help="write a PNG montage of VUs per level")
    show.add_argument("--per-level", type=int, default=2, help="VUs per level in the montage (default: %(default)s)")
    show.add_argument("--seed", type=int, default=0, help="which VUs the montage picks (default: %(default)s)")
    show.set_defaults(func=_show)

    ph = sub.add_parser("phantom", help="write a procedural spine phantom cohort as NIfTI (image + VerSe label map)")
    ph.add_argument("--patients", type=int, required=True, metavar="N", help="how many phantom patients to write")
    ph.add_argument("--out", required=True, metavar="DIR", help="folder for the NIfTI images and label maps")
    ph.add_argument("--seed", type=int, default=0, help="seed of the cohort: same seed, same volumes (default 0)")
    ph.add_argument("--contrast", choices=("T1", "T2"), default="T2", help="MRI weighting to imitate (default T2)")
    ph.add_argument(
        "--workers", type=int, default=None, help="processes writing volumes in parallel (default: the CPU count)"
    )
    ph.add_argument("--force", action="store_true",
                    help="write into --out even where it holds files that are not a phantom cohort")
    ph.set_defaults(func=_phantom)


def _parse_size(text: str) -> int | tuple[int, int]:
    from synthvu_core.errors import DataError

    parts = text.lower().replace("×", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise DataError(f"--size {text!r}: expected H or HxW in pixels") from None
    if len(nums) == 1:
        return nums[0]
    if len(nums) == 2:
        return nums[0], nums[1]
    raise DataError(f"--size {text!r}: expected H or HxW in pixels")


def parse_subvolume_size(text: str) -> tuple[int, int, int]:
    """``D,H,W`` (or ``DxHxW``) voxels of a sub-volume; one line naming the option where it is not three sizes."""
    from synthvu_core.errors import DataError

    parts = text.lower().replace("×", ",").replace("x", ",").split(",")
    try:
        nums = tuple(int(p) for p in parts)
    except ValueError:
        nums = ()
    if len(nums) != 3 or min(nums) < 2:
        raise DataError(f"--size {text!r}: a sub-volume needs three sizes D,H,W of at least 2 voxels, such as "
                        "32,128,128")
    return nums  # type: ignore[return-value]


def _extract_config(args: argparse.Namespace):
    """The :class:`ExtractConfig` of ``data build``'s options; options of the other unit are refused."""
    from synthvu_core.data.units import ExtractConfig
    from synthvu_core.errors import DataError

    common = {"mode": args.mode, "align": not args.no_align}
    if args.unit == "subvolume":
        vu_only = [f for f, given in (("--slices", args.slices != names.VU_SLICES),
                                      ("--slice-mm", args.slice_mm != names.VU_SLICE_MM),
                                      ("--fov-factor", args.fov_factor != names.VU_FOV_FACTOR),
                                      ("--fixed-mm", args.fixed_mm is not None)) if given]
        if vu_only:
            raise DataError(f"{vu_only[0]} applies to --unit vu; a sub-volume is set by --size D,H,W and --spacing MM")
        size = parse_subvolume_size(args.size or "32,128,128")
        return ExtractConfig.subvolume(size, 1.0 if args.spacing is None else args.spacing, **common)
    if args.spacing is not None:
        raise DataError("--spacing applies to --unit subvolume (a VU's pixel follows each disc's field of view)")
    return ExtractConfig(slices=args.slices, size=_parse_size(args.size or str(names.VU_SIZE)),
                         slice_mm=args.slice_mm, fov_factor=args.fov_factor, fixed_mm=args.fixed_mm, **common)


def _build(args: argparse.Namespace) -> int:
    from synthvu_core.data.build import (
        PhantomRecipe,
        build_dataset,
        build_phantom_dataset,
        check_dataset_out,
        same_scans,
    )

    check_dataset_out(args.out, force=args.force)  # before any work: never replace what is not ours
    config = _extract_config(args)
    from synthvu_core.data.dataset import SplitConfig

    split = SplitConfig.parse(args.split, args.split_seed, stratify=not args.no_stratify)
    if args.phantom is not None:
        recipe = PhantomRecipe.for_cohort(args.phantom, seed=args.seed, contrast=args.contrast, config=config,
                                          split=split)
        ds = build_phantom_dataset(recipe, args.out, workers=args.workers, force=args.force, clinical=args.clinical)
    else:
        ds = build_dataset(
            args.images,
            args.out,
            config=config,
            split=split,
            image_glob=args.image_glob,
            label_glob=args.label_glob,
            patient_regex=args.patient_regex,
            mapping=args.mapping,
            workers=args.workers,
            skip_bad=args.skip_bad,
            force=args.force,
            sources=args.sources,
            harmonisation=args.harmonise,
            clinical=args.clinical,
        )
    print(f"{args.out}: {_summary(ds.card)}")
    _print_sources(ds.card)
    strata = ds.split_strata()
    if strata is not None:
        print(f"  split stratified: every part has its share of each of {len(set(strata.values()))} strata of patients "
              "(same source and levels; --no-stratify for a plain permutation)")
    for s in ds.card.get("skipped", []):
        print(f"  skipped {s['error']}")
    _print_design_warnings(ds)
    for ids in same_scans(ds.card):
        print(f"  warning: patients {', '.join(ids)} have byte-identical source images: if they are one person, keep "
              "one (the split may put the copies in different parts; the privacy ledger already counts them as one)")
    return 0


def _summary(card: dict) -> str:
    c = card["counts"]
    extract = card.get("extract") or {}
    what = short = "VUs"
    if extract.get("unit") == "subvolume":
        what, short = f"sub-volumes of {extract['slice_mm']:g} mm voxels", "sub-volumes"
    parts = ", ".join(f"{p} {v['patients']} patients / {v['units']} {short}" for p, v in c["per_split"].items())
    return (f"{c['units']} {what} {tuple(card['shape'])} from {c['patients']} patients ({parts}); "
            f"fingerprint {card['fingerprint']}")


def _show(args: argparse.Namespace) -> int:
    from synthvu_core.data.dataset import VUDataset, level_rows
    from synthvu_core.storage import check_suffix, check_writable

    if args.montage:  # before any work
        if args.per_level < 1:
            from synthvu_core.errors import SelectionError

            raise SelectionError(f"--per-level {args.per_level}: a montage draws at least 1 VU per level")
        check_writable(check_suffix(args.montage, (".png",), "montage"), "montage")
    ds = VUDataset.load(args.dataset)
    if args.json:
        print(json.dumps(ds.card, indent=2))
    else:
        print(f"{args.dataset}: {_summary(ds.card)}")
        _print_sources(ds.card)
        for line in level_rows(ds.units):
            print(f"  {line}")
        for s in ds.card.get("skipped", []):
            print(f"  skipped {s['error']}")
        _print_design_warnings(ds)
        _print_spent(ds)
    if args.montage:
        from synthvu_core.data.dataset import write_montage

        write_montage(ds, args.montage, per_level=args.per_level, seed=args.seed)
        print(f"montage: {args.montage}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _print_sources(card: dict) -> None:
    """Each source's VUs and what harmonisation did to their intensities (nothing for one source)."""
    h = card.get("harmonisation") or {}
    if len(h.get("sources", {})) > 1:
        counts = ", ".join(f"{k} {v['vus']} VUs" for k, v in h["sources"].items())
        print(f"  sources: {counts}; largest intensity distance between two sources {h['max_distance_before']} "
              f"before, {h['max_distance_after']} after harmonisation ({h['method']})")


def _print_design_warnings(ds: VUDataset) -> None:
    """What the split leaves thin for the level scheme: few training patients of a level, or too few holdout
    patients to read its recall."""
    from synthvu_core.data.dataset import design_warnings

    for line in design_warnings(ds.units):
        print(f"  {line}")


def _print_spent(ds: VUDataset) -> None:
    """The privacy already spent on the dataset's patients, from the ledgers (nothing for an unreadable one: the
    next training run refuses it with its own message)."""
    from synthvu_core.errors import DataError
    from synthvu_core.models.ledger import spent_on, spent_text

    try:
        found = spent_on(ds)
    except DataError as e:
        print(f"  privacy ledger: {e}")
        return
    if found is not None:
        print(f"  {spent_text(found)}")


def _phantom(args: argparse.Namespace) -> int:
    from synthvu_core.data import phantom
    from synthvu_core.errors import DataError
    from synthvu_core.storage import check_replaceable

    if args.patients < 1:
        raise DataError(f"--patients must be at least 1, got {args.patients}")
    check_replaceable(args.out, lambda p: (p / "patients.csv").is_file(), "phantom cohort", force=args.force)
    pairs = phantom.write_cohort(
        Path(args.out), args.patients, seed=args.seed, contrast=args.contrast, workers=args.workers
    )
    print(f"{args.out}: {len(pairs)} phantom patients ({args.contrast}, seed {args.seed})")
    return 0
