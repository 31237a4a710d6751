"""``python -m crypto.verify OUTBOX --device-pub FILE``: see ``crypto.verify.main``."""

import sys

from crypto.verify import main

sys.exit(main())
