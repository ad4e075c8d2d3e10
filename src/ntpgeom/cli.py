"""The ``ntpgeom`` command: each pipeline stage, runnable by hand outside Snakemake.

Each subcommand lives with its stage: a module listed in ``SUBCOMMANDS`` exposes
``add_parser(subparsers)``, which registers the subcommand and sets ``func`` (taking the parsed
arguments) as its default. A :class:`~ntpgeom.errors.UserError` is printed as one line, exit 2.

A subcommand's ``--out`` is checked before any work (:func:`ntpgeom.store.check_output`): every
existing path among its other arguments counts as an input that the output must not replace.
SIGINT and SIGTERM end a command with one line and exit status 130 / 143, after every cleanup ran.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from pathlib import Path

from ntpgeom import __version__
from ntpgeom.errors import UserError
from ntpgeom.store import check_output, install_signal_handlers, interrupted_status

# Modules that contribute a subcommand, in the order they appear in ``ntpgeom --help``.
SUBCOMMANDS = ["ntpgeom.data.build", "ntpgeom.theory.svm", "ntpgeom.train.stage"]


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


def _resume_hint(args: argparse.Namespace | None) -> str:
    """What a rerun does: training resumes from the checkpoint it kept, the rest starts over."""
    if args is not None and args.command == "train":
        from ntpgeom.train.trajectory import checkpoint_path  # torch: the train command only

        if checkpoint_path(args.out).exists():
            return f"checkpoint kept in {checkpoint_path(args.out)}: rerun to resume"
    return "nothing written: rerun to start over"


def main(argv: list[str] | None = None) -> int:
    previous = install_signal_handlers()  # first: Ctrl-C while torch imports is clean too
    args = None
    try:
        args = make_parser().parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        if getattr(args, "out", None) is not None:
            inputs = [v for k, v in vars(args).items()
                      if k != "out" and isinstance(v, str | Path) and str(v) and Path(v).exists()]
            check_output(args.out, inputs)
        args.func(args)
    except UserError as err:
        print(f"ntpgeom {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        name, status = interrupted_status(err)
        where = f"ntpgeom {args.command}" if args is not None else "ntpgeom"
        print(f"{where}: interrupted by {name}; temporary files removed, {_resume_hint(args)}",
              file=sys.stderr)
        return status
    finally:
        for sig, handler in previous.items():  # main() may run inside another program
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
