"""``python -m agent``: chat, ask and inspect traces."""

import sys

from agent.cli import main

sys.exit(main())
