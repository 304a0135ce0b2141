"""``python -m sleepstack.cli``: the same command line as the ``sleepstack`` script."""

import sys

from sleepstack.cli import main

sys.exit(main())
