"""An argparse parser whose errors are one line naming the command, with exit status 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from licycler.errors import EXIT_USAGE

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """Like :class:`argparse.ArgumentParser` but ``error`` prints one line and no usage block."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(EXIT_USAGE)
