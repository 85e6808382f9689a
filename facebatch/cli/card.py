"""``facebatch card``: a release folder's model card (README.md) generated again from its reports, after the
release check; ``--published`` sets the measured throughput beside a published table."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "card",
        help="a release folder's model card (README.md), generated again from its reports after the release check",
        description="Check a release folder (as release --check does: a tampered folder is refused), then generate "
        "its model card from its reports alone and print it (or write it with -o, outside the folder). "
        "--published TABLE sets the measured throughput beside a published table (a YAML file, or a shipped one "
        "by name, e.g. alonsorobots_rtx5090) with the ratio per row.",
    )
    parser.add_argument("release", type=Path, metavar="RELEASE_DIR")
    parser.add_argument("--published", type=Path, metavar="TABLE", help="a published throughput table to compare with")
    parser.add_argument("-o", "--out", type=Path, metavar="FILE.md", help="write the card here (default: print it)")
    parser.add_argument("--images", type=Path, metavar="PATH", help="photos for the check (INT8 made elsewhere)")
    parser.add_argument(
        "--manifest-sha256", metavar="HEX", help="the sha256 release printed for MANIFEST.json: anchors the check"
    )
    parser.set_defaults(handler=run, field_flags={"photos": "--images"})


def run(args: argparse.Namespace) -> int:
    from facebatch.workflows.release.card import CardOptions, card

    result = card(
        CardOptions(
            release=args.release,
            published=args.published,
            out=args.out,
            photos=arguments.photos(args),
            manifest_sha256=args.manifest_sha256,
        )
    )
    if result.written is None:
        print(result.text, end="", flush=True)
    else:
        print(f"wrote {result.written}", flush=True)
    return 0
