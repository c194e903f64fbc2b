"""``python -m agent``: ask the agent about photos, chat, read traces, evaluate."""

import sys

from agent.cli import main

sys.exit(main())
