"""``python -m runner.cli``: the ``vat`` command."""

import sys

from runner.cli.app import main

sys.exit(main())
