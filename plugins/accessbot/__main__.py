"""`python -m accessbot ...`: see accessbot.cli."""

import sys

from .cli import main

sys.exit(main())
