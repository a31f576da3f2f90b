"""``python -m demos demos/NAME [--port N] [--host ADDRESS] [--quiet]``, from the repository root:
serves the demo and runs its code live (what ``./scripts/watch-demo`` runs)."""

from __future__ import annotations

import sys

from demos.server import main

sys.exit(main())
