"""``python -m licycler`` runs the command line."""

import sys

from licycler.cli.main import main

if __name__ == "__main__":  # not when a writer process imports the main module (multiprocessing)
    sys.exit(main())
