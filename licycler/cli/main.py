"""Entry point of the ``licycler`` command: one sub-command per module, errors without tracebacks.

Exit statuses: 0 success; 1 a run ended in an abort or fault (later commands); 2 a user mistake
(bad option, value, unit or file); 3 an unexpected internal error (a bug: use ``--verbose``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from licycler import __version__
from licycler.cli import calc, demo, export, instruments, recorder, report, run, schedules, sim_serve, station, sweep
from licycler.cli.parser import OneLineParser
from licycler.errors import UserError

__all__ = ["EXIT_INTERNAL", "build_parser", "main"]

EXIT_INTERNAL = 3

COMMANDS = (calc, schedules, run, sweep, sim_serve, instruments, recorder, export, report, demo, station)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = OneLineParser(prog="licycler", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"licycler {__version__}")
    parser.add_argument("--verbose", action="store_true", help="log details and show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used by ``python -m licycler``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        status: int = args.handler(args)
    except UserError as exc:
        print(f"licycler {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print(f"licycler {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"licycler {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(run again with --verbose for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return status


if __name__ == "__main__":
    sys.exit(main())
