"""``python -m tracec_runtime verify|route ...`` (the ``tracec-runtime`` command)."""

import sys

from tracec_runtime.cli import main

sys.exit(main())
