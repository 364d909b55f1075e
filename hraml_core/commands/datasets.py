"""``hraml datasets``: list the known datasets, download missing ones, write one as shards."""
from __future__ import annotations

import argparse

from . import CommandError, text_table
from .train import add_file_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "datasets", help="list and download datasets",
        description="List the datasets HRAML knows (embedded, available, missing) and download missing ones.",
    )
    sub = parser.add_subparsers(dest="datasets_command", metavar="ACTION")
    parser.set_defaults(func=cmd_list, data_dir=None, verify=False)  # no ACTION: the list

    p_list = sub.add_parser("list", help="show every dataset and whether it is available",
                            description="Show every dataset: task, shape, source and where it is.")
    p_list.add_argument("--data-dir", metavar="DIR", help="data directory (default: $HRAML_DATA_DIR or datasets/files)")
    p_list.add_argument("--verify", action="store_true", help="also check the sha256 of the files present")
    p_list.set_defaults(func=cmd_list)

    p_dl = sub.add_parser("download", help="fetch a missing dataset from its public source",
                          description="Fetch a dataset's files, verify their sha256 and cache them in the data directory.")
    p_dl.add_argument("name", metavar="NAME", help="dataset name (see `hraml datasets list`)")
    p_dl.add_argument("--data-dir", metavar="DIR", help="data directory (default: $HRAML_DATA_DIR or datasets/files)")
    p_dl.add_argument("--url-base", metavar="URL",
                      help="fetch NAME/FILE from this base URL instead of the original source "
                           "(default: $HRAML_DATASETS_URL, else the registry's URLs)")
    p_dl.add_argument("--quiet", action="store_true", help="no progress bar")
    p_dl.set_defaults(func=cmd_download)

    p_sh = sub.add_parser("shard", help="write a dataset as shards for a multi-node torchrun job",
                          description="Write a dataset as a shard layout: a folder of Parquet files and a manifest "
                                      "(shards.json), from which each rank of `torchrun -m hraml_core.distributed "
                                      "--dataset DIR` reads only its own shards (docs/DISTRIBUTED.md).")
    p_sh.add_argument("name", metavar="NAME", help="dataset name or data file (see `hraml datasets list`)")
    p_sh.add_argument("--shards", type=int, required=True, metavar="N",
                      help="number of shards; a job of W ranks needs W to divide N")
    p_sh.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder to write")
    p_sh.add_argument("--seed", type=int, default=0, help="seed of the rows' shuffle into shards (default 0)")
    p_sh.add_argument("--rows-per-file", type=int, default=None, metavar="ROWS",
                      help="split a shard into files of at most ROWS rows (default 4194304)")
    p_sh.add_argument("--data-dir", metavar="DIR", help="data directory (default: $HRAML_DATA_DIR or datasets/files)")
    add_file_arguments(p_sh)
    p_sh.add_argument("--quiet", action="store_true", help="no progress bar")
    p_sh.set_defaults(func=cmd_shard)


def cmd_list(args: argparse.Namespace) -> int:
    from hraml_core.data import DEFAULT_DATASET, list_datasets
    from hraml_core.data.paths import REGISTRY_PATH, resolve_data_dir

    root, origin = resolve_data_dir(args.data_dir)
    statuses = list_datasets(args.data_dir, verify=args.verify)
    rows = [["NAME", "TASK", "SHAPE", "FORMAT", "SOURCE", "STATUS"]]
    for s in statuses:
        name = s.name + (" *" if s.name == DEFAULT_DATASET else "")
        rows.append([name, s.task, s.shape, s.format, s.source, s.status_text])
    print(f"data directory: {root} (from {'--data-dir' if origin == 'argument' else origin})")
    if not REGISTRY_PATH.exists():
        print(f"note: the manifest {REGISTRY_PATH} is missing; only embedded datasets are listed")
    print(text_table(rows))
    print(f"* default dataset. {sum(s.status in ('embedded', 'available') for s in statuses)} of "
          f"{len(statuses)} datasets can be loaded.")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from hraml_core.data import download_dataset
    from hraml_core.data.registry import resolve_spec

    spec = resolve_spec(args.name)
    if spec.embedded:
        raise CommandError(f"{spec.name} is embedded (it ships with the code): nothing to download")
    if args.url_base is not None and not args.url_base.strip():
        raise CommandError("--url-base is empty")
    folder = download_dataset(spec.name, data_dir=args.data_dir, url_base=args.url_base,
                              progress=not args.quiet, log=print)
    print(f"{spec.name}: ready in {folder}")
    return 0


def cmd_shard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hraml_core.data.shards import ROWS_PER_FILE, check_out_folder, write_shards

    from .train import load_data

    if args.shards < 1:
        raise CommandError(f"--shards must be a positive integer, got {args.shards}")
    rows_per_file = ROWS_PER_FILE if args.rows_per_file is None else args.rows_per_file
    if rows_per_file < 1:
        raise CommandError(f"--rows-per-file must be a positive integer, got {rows_per_file}")
    check_out_folder(Path(args.out))  # before reading a dataset that may be large
    ds = load_data(args.name, args.data_dir, args.label_columns, args.ignore_columns, args.format,
                   progress=not args.quiet)
    bar = None
    if not args.quiet:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=ds.n_samples, unit="rows", unit_scale=True, desc=f"sharding {ds.name}", file=sys.stderr, leave=False)
    try:
        layout = write_shards(ds, args.out, args.shards, seed=args.seed, rows_per_file=rows_per_file,
                              progress=None if bar is None else (lambda done, total: bar.update(done - bar.n)))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    finally:
        if bar is not None:
            bar.close()
    files = sum(len(s["files"]) for s in layout.shards)
    sizes = [s["rows"] for s in layout.shards]
    print(f"{ds.summary()}\nwrote {layout.n_shards} shards ({min(sizes)} to {max(sizes)} rows each, {files} files) "
          f"to {args.out}; layout id {layout.id[:12]}")
    return 0
