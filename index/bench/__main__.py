"""Child processes of the benchmarks: ``python -m index.bench {naive,peer,embed}-child JSON``.

The indexing benchmark runs its naive baseline, its LlamaIndex peer and its embedder-throughput
measurement in child processes of their own, so that each one's peak memory is measured apart;
each child prints its result as one JSON line.
"""

import json
import sys

from index.bench.embed_floor import embedder_throughput
from index.bench.naive import naive_baseline
from index.bench.peer import llama_index_peer

CHILDREN = {"naive-child": naive_baseline, "peer-child": llama_index_peer, "embed-child": embedder_throughput}


def main(argv: list[str]) -> int:
    """Run the child named by ``argv[0]`` with the JSON arguments ``argv[1]``."""
    if len(argv) != 2 or argv[0] not in CHILDREN:
        print(f"usage: python -m index.bench {{{','.join(CHILDREN)}}} JSON", file=sys.stderr)
        return 2
    print(json.dumps(CHILDREN[argv[0]](**json.loads(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
