"""``python -m chitram_falcon``: the same commands as ``chitram``."""

import sys

from chitram_falcon.cli import main

sys.exit(main())
