"""``python -m hwnas``: the ``hwnas`` command."""
import sys

from hwnas.app.cli import main

sys.exit(main())
