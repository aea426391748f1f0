"""An argparse parser whose errors are one line naming the command, with exit status 2."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, NoReturn

from licycler.errors import EXIT_USAGE

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """Like :class:`argparse.ArgumentParser` but ``error`` prints one line and no usage block, and
    values such as ``-1e-10`` are read as negative numbers, not as options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(EXIT_USAGE)
