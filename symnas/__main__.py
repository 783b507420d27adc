"""``python -m symnas`` runs the CLI."""
import sys

from symnas.cli import main

sys.exit(main())
