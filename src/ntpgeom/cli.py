"""The ``ntpgeom`` command: each pipeline stage, runnable by hand outside Snakemake.

Each subcommand lives with its stage: a module listed in ``SUBCOMMANDS`` exposes
``add_parser(subparsers)``, which registers the subcommand and sets ``func`` (taking the parsed
arguments) as its default. A :class:`~ntpgeom.errors.UserError` is printed as one line, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ntpgeom import __version__
from ntpgeom.errors import UserError

# Modules that contribute a subcommand, in the order they appear in ``ntpgeom --help``.
SUBCOMMANDS = ["ntpgeom.data.build", "ntpgeom.theory.svm", "ntpgeom.train.training"]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ntpgeom", description="The implicit geometry of next-token prediction, stage by "
        "stage. Snakemake runs the whole pipeline; these commands run one step by hand.")
    parser.add_argument("--version", action="version", version=f"ntpgeom {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except UserError as err:
        print(f"ntpgeom {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
