"""The `wikiluigi` command: what Luigi's own command line does not do well (listing, counting on disk)."""
import argparse
import sys

from wikiluigi import paths
from wikiluigi.convert import summary
from wikiluigi.convert.stage import processed_folder
from wikiluigi.errors import WikiluigiError
from wikiluigi.sources import derived, manifest

RUN_HELP = """Running the pipeline is Luigi's job:
  luigi --module wikiluigi Wikipedia --manifest demo --local-scheduler      scrape and convert one manifest
  luigi --module wikiluigi Generate --run-name demo --Train-manifests '["demo"]' --local-scheduler
                                                                           ... and train and generate
  luigid --background --logdir /tmp/luigid   then leave out --local-scheduler and add --workers 8
                                             to watch it at http://localhost:8082"""


def list_manifests(_args) -> int:
    for name, path in manifest.available().items():
        try:
            loaded = manifest.load(name)
        except WikiluigiError as error:
            print(f"{name}\t(broken: {error})")
            continue
        source = loaded.api or f"dump {loaded.dump}"
        every = [f"all pages of namespace {', '.join(map(str, loaded.namespaces))}"] if loaded.all_pages else []
        wanted = ", ".join(every + list(loaded.include_categories + loaded.include_pages))
        if loaded.exclude_categories or loaded.exclude_pages:
            wanted += " except " + ", ".join(loaded.exclude_categories + loaded.exclude_pages)
        print(f"{name}\t{source}\t{wanted}\t({path})")
    return 0


def status(args) -> int:
    loaded = manifest.load(args.manifest)
    derived_path = paths.derived_manifest(args.manifest)
    if not derived_path.exists():
        print(f"{args.manifest}: not derived yet ({derived_path} is missing).")
        print(f"  luigi --module wikiluigi Wikipedia --manifest {args.manifest} --local-scheduler")
        return 0
    counts = summary.collect(args.manifest)
    source = loaded.api or loaded.dump
    folder = processed_folder(loaded, derived.load(args.manifest).host)
    print(f"{args.manifest} ({source}, pages in {folder}):")
    for key, value in (("derived", counts.listed), ("raw", counts.fetched), ("processed", counts.converted),
                       ("failed", len(counts.failures))):
        print(f"  {key:<10} {value}")
    if counts.failures:
        print(f"  reasons: {paths.failures_report(args.manifest)} (after a Wikipedia run)")
    from wikiluigi.sources.refresh import last_report
    refreshed = last_report(args.manifest)
    print(f"  last refreshed: {refreshed['when']} ({refreshed['changed']} changed, {refreshed['new']} new, "
          f"{refreshed['gone']} gone)" if refreshed else "  last refreshed: never (luigi --module wikiluigi Refresh "
          f"--manifest {args.manifest})")
    return 0


def convert(args) -> int:
    from wikiluigi.training.backends import torch_convert
    done = torch_convert.convert(args.source, args.target)
    steps = done.get("checkpoints") or {"step": done.get("step")}
    print(f"{args.source} ({done['from']}) -> {done['target']} ({done['to']}): "
          + ", ".join(f"{kind} {step}" for kind, step in steps.items()))
    return 0


def main(argv=None) -> int:
    import wikiluigi  # noqa: F401  (loads the shipped luigi.cfg defaults: data_dir and the rest)

    parser = argparse.ArgumentParser(prog="wikiluigi", description=__doc__, epilog=RUN_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("manifests", help="list the manifests, with their wiki and categories").set_defaults(func=list_manifests)
    status_parser = commands.add_parser("status", help="pages on disk for a manifest: derived, raw, processed, failed")
    status_parser.add_argument("--manifest", required=True)
    status_parser.set_defaults(func=status)
    convert_parser = commands.add_parser(
        "convert", help="a run or model folder to the other training backend's format (TensorFlow <-> torch)",
        description="A run folder (out/checkpoint/<run>) becomes a new run of the other backend, its latest and "
                    "best checkpoints converted; a model folder (a base model, or a run's latest/ or best/) gets "
                    "its weights in the other format (TARGET may be SOURCE for a TensorFlow base model: model.pt "
                    "is added). Reading or writing TensorFlow checkpoints needs TensorFlow.")
    convert_parser.add_argument("source")
    convert_parser.add_argument("target")
    convert_parser.set_defaults(func=convert)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except WikiluigiError as error:
        print(f"wikiluigi: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
