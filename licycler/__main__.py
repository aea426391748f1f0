"""``python -m licycler`` runs the command line."""

import sys

from licycler.cli.main import main

sys.exit(main())
