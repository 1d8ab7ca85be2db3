"""``python -m anogen``: the same as the ``anogen`` command."""

import sys

from anogen.cli import main

sys.exit(main())
