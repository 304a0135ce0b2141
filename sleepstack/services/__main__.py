"""``python -m sleepstack.services NAME``: run one service of the local stack."""

import sys

from sleepstack.services import main

sys.exit(main())
