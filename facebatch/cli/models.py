"""``facebatch models``: the SCRFD variants and ArcFace networks this tool builds."""

from __future__ import annotations

import argparse

from facebatch.cli.render import console_for, show_catalog


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models",
        help="list the SCRFD variants and ArcFace networks",
        description="List the SCRFD variants and ArcFace networks (with their short names) by parameter count "
        "and default artifact name.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from facebatch.exporter.models.catalog import arcface_catalog, scrfd_catalog

    show_catalog(console_for(args), scrfd_catalog(), arcface_catalog())
    return 0
