"""Tests of the documentation site: its generated pages and the code on its pages."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # docsgen/ sits at the repository root, beside the packages
    sys.path.insert(0, str(ROOT))
