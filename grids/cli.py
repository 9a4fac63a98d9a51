"""Geography commands for `python -m gis`: import, export, validate, generations.

Imports are dry runs that print the validation report unless --commit; a commit of invalid data is
refused (one line per finding on stderr, exit code 2, nothing written).
"""

from __future__ import annotations

import json
import sys
import time

from gis.errors import Unprocessable


def _log(msg: str) -> None:
    print(f"[gridgov] {msg}", file=sys.stderr, flush=True)


def _open(settings):
    from gis.cli import _runtime

    return _runtime(settings)


def _print_report(report, as_json: bool) -> None:
    print(report.to_json() if as_json else report.text())


def _refuse(e: Unprocessable) -> None:
    """Print one line per error finding on stderr, then let the error end the command."""
    for f in (e.details or {}).get("findings", []):
        if f["severity"] == "error":
            where = f" @ {f['location'][0]:.6f},{f['location'][1]:.6f}" if f.get("location") else ""
            print(f"  {f['kind']} [{', '.join(f['codes'])}]: {f['message']}{where}", file=sys.stderr)
    raise e


def _extent(args, db):
    """--extent, else the loaded city's own extent, else None (the China box)."""
    from grids.io import city_extent, parse_extent

    return parse_extent(getattr(args, "extent", None)) or city_extent(db)


def cmd_import_boundaries(args, settings):
    from grids.io import import_boundaries, read_grids, read_regions

    t0 = time.monotonic()
    rt = _open(settings)
    try:
        extent = _extent(args, rt.db)
        _log(f"reading grids from {args.grids}")
        grids = read_grids(args.grids, layer=args.grid_layer, crs=args.crs, extent=extent)
        regions_path = args.regions or args.grids
        _log(f"reading regions from {regions_path}")
        regions = read_regions(regions_path, layer=args.layer, crs=args.crs, extent=extent,
                               skip_layers=tuple(args.skip_layer or ()))
        _log(f"read {len(regions):,} regions and {len(grids):,} grids in {time.monotonic() - t0:.1f}s")
        source = args.source or f"import {args.grids}"
        try:
            report, gen, relocation = import_boundaries(rt.db, regions, grids, source, commit=args.commit,
                                                        activate=args.activate, tol_m2=args.tol_m2, progress=_log,
                                                        tol_width_m=args.tol_width_m)
        except Unprocessable as e:
            _refuse(e)
        _print_report(report, args.json)
        if gen is None:
            _log("dry run: nothing written (add --commit to write a new generation)")
            if not report.ok:
                raise Unprocessable(f"{len(report.errors)} error(s) in the boundaries: --commit would be refused")
            return
        _log(f"committed generation {gen} in {time.monotonic() - t0:.1f}s" + (
            "" if args.activate else f" (inactive: `python -m gis generations activate {gen}`)"))
        if relocation is not None:
            print(json.dumps(relocation.to_dict(), ensure_ascii=False, default=str) if args.json
                  else relocation.text())
    finally:
        rt.close()


def cmd_import_table(args, settings):
    from grids.io import import_records, read_records

    rt = _open(settings)
    try:
        records = read_records(args.kind, args.file, crs=args.crs, sheet=args.sheet, extent=_extent(args, rt.db))
        _log(f"read {len(records):,} {args.kind} from {args.file}")
        try:
            report = import_records(rt.db, args.kind, records, commit=args.commit, progress=_log)
        except Unprocessable as e:
            _refuse(e)
        _print_report(report, args.json)
        if not args.commit:
            _log("dry run: nothing written (add --commit to write)")
            if not report.ok:
                raise Unprocessable(f"{len(report.errors)} error(s) in {args.file}: --commit would be refused")
        else:
            _log(f"committed {len(records):,} {args.kind}")
    finally:
        rt.close()


def cmd_export(args, settings):
    from grids.io import export_layers

    rt = _open(settings)
    try:
        counts = export_layers(rt.db, args.out, fmt=args.format, generation=args.generation, progress=_log)
        print(", ".join(f"{k} {v:,}" for k, v in counts.items()) + f" -> {args.out}")
    finally:
        rt.close()


def cmd_validate(args, settings):
    from grids.generations import load_boundaries
    from grids.store import resolve_generation
    from grids.validate import validate

    rt = _open(settings)
    try:
        gen = resolve_generation(rt.db, args.generation)
        regions, grids = load_boundaries(rt.db, gen)
        staff = rt.db.fetchall("SELECT code, name, role, grid_code FROM staff WHERE active")
        roles = rt.db.fetchall("SELECT role, label, is_officer FROM staff_role")
        kw = {} if args.tol_m2 is None else {"tol_m2": args.tol_m2}
        report = validate(regions, grids, staff=staff if staff or roles else None, roles=roles or None, **kw)
        report.checked["generation"] = gen
        _print_report(report, args.json)
        if not report.ok:
            raise Unprocessable(f"generation {gen}: {len(report.errors)} error(s)")
    finally:
        rt.close()


def cmd_generations(args, settings):
    from grids.generations import activate_generation_and_relocate, list_generations

    rt = _open(settings)
    try:
        if args.action == "list":
            rows = list_generations(rt.db)
            if args.json:
                print(json.dumps(rows, ensure_ascii=False, default=str, indent=2))
            for r in [] if args.json else rows:
                flag = "*" if r["active"] else " "
                print(f"{flag} {r['id']:>4}  {r['created_at']:%Y-%m-%d %H:%M}  regions {r['regions']:>6,}  "
                      f"grids {r['grids']:>6,}  {r['source']}")
            return
        if args.n is None:
            raise Unprocessable("generations activate needs the generation number, e.g. `generations activate 2`")
        result = activate_generation_and_relocate(rt.db, args.n)
        print(json.dumps(result.to_dict(), ensure_ascii=False, default=str) if args.json else result.text())
    finally:
        rt.close()


def register(sub) -> None:
    """Add import / export / validate / generations to `python -m gis`."""
    imp = sub.add_parser("import", help="import boundaries, staff, centers, departments or addresses (dry run "
                                        "unless --commit)")
    isub = imp.add_subparsers(dest="what", required=True)
    b = isub.add_parser("boundaries", help="regions and grids from GeoPackage / zipped Shapefile / GeoJSON")
    b.add_argument("--grids", required=True, help="file holding the grid layer")
    b.add_argument("--regions", help="file holding the regions (default: the --grids file)")
    b.add_argument("--layer", help="region layer name (default: every layer named by level, or the only one)")
    b.add_argument("--grid-layer", help="grid layer name (default: grid/grids/网格 or the only layer)")
    b.add_argument("--crs", help="override the files' CRS: EPSG:4526, GCJ-02, BD-09 …")
    b.add_argument("--tol-m2", type=float, help="gaps/overlaps smaller than this (m²) are ignored")
    b.add_argument("--tol-width-m", type=float, help="gaps/overlaps nowhere wider than this (m) are ignored "
                                                     "(default 0.5)")
    b.add_argument("--skip-layer", action="append", help="leave this layer of the regions file out (repeatable)")
    b.add_argument("--extent", help="minlon,minlat,maxlon,maxlat the data must lie in (default: the loaded city's "
                                    "extent, or China)")
    b.add_argument("--source", help="what to record as the generation's source")
    b.add_argument("--commit", action="store_true", help="write a new generation (refused when invalid)")
    b.add_argument("--activate", action="store_true", help="with --commit: activate it and re-locate open cases")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(fn=cmd_import_boundaries)
    for kind in ("staff", "centers", "departments", "roads", "addresses"):
        t = isub.add_parser(kind, help=f"{kind} from CSV or XLSX (upsert by " +
                            ("name and county)" if kind == "roads" else "code)"))
        t.add_argument("file")
        t.add_argument("--crs", help="CRS of lon/lat columns (default EPSG:4326; GCJ-02, BD-09 …)")
        t.add_argument("--sheet", help="XLSX sheet (default: the first)")
        t.add_argument("--extent", help="minlon,minlat,maxlon,maxlat the points must lie in (default: the loaded "
                                        "city's extent, or China)")
        t.add_argument("--commit", action="store_true")
        t.add_argument("--json", action="store_true")
        t.set_defaults(fn=cmd_import_table, kind=kind)
    e = sub.add_parser("export", help="write regions, grids, centers, addresses as GeoPackage or GeoJSON layers")
    e.add_argument("--format", choices=["gpkg", "geojson"], default="gpkg")
    e.add_argument("--out", required=True, help="a .gpkg file, or a folder for GeoJSON (one file per layer)")
    e.add_argument("--generation", type=int, help="default: the active generation")
    e.set_defaults(fn=cmd_export)
    v = sub.add_parser("validate", help="validate the boundaries and grid staff in the database")
    v.add_argument("--generation", type=int)
    v.add_argument("--tol-m2", type=float)
    v.add_argument("--json", action="store_true")
    v.set_defaults(fn=cmd_validate)
    g = sub.add_parser("generations", help="list boundary generations or activate one")
    g.add_argument("action", choices=["list", "activate"])
    g.add_argument("n", type=int, nargs="?")
    g.add_argument("--json", action="store_true")
    g.set_defaults(fn=cmd_generations)
    register_bulk(sub)


def cmd_bulk_locate(args, settings):
    """Locate many points on a Dask cluster (local processes, or --scheduler ADDRESS) with one GridIndex."""
    from pathlib import Path

    from grids.bulk import GridIndex
    from grids.distributed import local_client, locate_cases_in_db, locate_parquet

    if bool(args.parquet) == bool(args.cases):
        raise Unprocessable("bulk-locate needs exactly one input: --parquet FILE or --cases (the case table)")
    if args.parquet and not Path(args.parquet).exists():
        raise Unprocessable(f"--parquet {args.parquet}: no such file or folder")
    rt = _open(settings)
    try:
        t = time.monotonic()
        index = GridIndex.cached(rt.db, args.generation)
        gen = index.generation
        path = Path(settings.data_dir) / "cache" / f"bulk-g{gen}.npz"
        index.save(path)   # a stable name the workers load (the cache name carries a checksum)
        dsn = rt.db.dsn
    finally:
        rt.close()
    _log(f"grid index of generation {gen} ready in {time.monotonic() - t:.1f}s")
    client = None if args.scheduler == "sync" else (
        local_client(args.workers) if not args.scheduler else __import__("distributed").Client(args.scheduler))
    try:
        t = time.monotonic()
        ddf = locate_parquet(args.parquet, path, key=args.key) if args.parquet else locate_cases_in_db(dsn, path)
        if args.scheduler == "sync":
            import dask

            with dask.config.set(scheduler="synchronous"):
                ddf.to_parquet(args.out, write_index=False)
        else:
            ddf.to_parquet(args.out, write_index=False)
        import pandas as pd

        res = pd.read_parquet(args.out)
        _log(f"located {len(res):,} points in {time.monotonic() - t:.1f}s "
             f"({(res['grid_code'] != '').mean():.1%} inside a grid) → {args.out}")
    finally:
        if client is not None:
            client.close()


def register_bulk(sub) -> None:
    """Add `bulk-locate` to `python -m gis`."""
    b = sub.add_parser("bulk-locate", help="point → grid for millions of points on Dask (GeoParquet or the "
                                           "case table), one GridIndex per worker")
    b.add_argument("--parquet", help="(Geo)Parquet file or folder with point geometry or lon/lat columns")
    b.add_argument("--cases", action="store_true", help="locate every case of the database (DATABASE_URL)")
    b.add_argument("--key", default="id", help="key column copied to the output (default id)")
    b.add_argument("--generation", type=int, help="boundary generation (default: the active one)")
    b.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    b.add_argument("--scheduler", help="address of a running Dask scheduler, or 'sync' for one process")
    b.add_argument("--out", required=True, help="output Parquet folder")
    b.set_defaults(fn=cmd_bulk_locate)
