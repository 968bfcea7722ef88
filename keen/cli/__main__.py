"""``python -m keen.cli ...``: the ``keen`` command."""

from __future__ import annotations

import sys

from keen.cli import main

if __name__ == "__main__":
    sys.exit(main())
