"""``python -m index``: inspect, build and search the vector index."""

import sys

from index.cli import main

sys.exit(main())
