"""``python -m hraml_core`` is the ``hraml`` command."""
import sys

from hraml_core.cli import main

sys.exit(main())
