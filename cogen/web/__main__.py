"""``python -m cogen.web``: the same as the ``cogen-web`` command."""
import sys

from cogen.web.cli import main

sys.exit(main())
