"""Child processes of the benchmarks: ``python -m index.bench naive-child JSON``.

The indexing benchmark runs its naive baseline in a child process of its own, so that the
baseline's peak memory is measured apart; the child prints its result as one JSON line.
"""

import json
import sys

from index.bench import naive_baseline


def main(argv: list[str]) -> int:
    """Run the child named by ``argv[0]`` with the JSON arguments ``argv[1]``."""
    if len(argv) != 2 or argv[0] != "naive-child":
        print("usage: python -m index.bench naive-child JSON", file=sys.stderr)
        return 2
    print(json.dumps(naive_baseline(**json.loads(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
