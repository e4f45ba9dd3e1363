"""``python -m autolabel.cli``."""

import sys

from autolabel.cli import main

sys.exit(main())
