"""Benchmark: generate the mutation corpus (issue 18 item 2) and print its tally: how many
mutations, clean refusals, valid acceptances and failures, the slowest run and the peak memory.

Usage: python benchmarks/mutation_corpus.py [--seed 18] [--workers 2] [--root DIR] [--json]
(Without --root the corpus lives in a temporary folder, removed afterwards. The slow test
tests/fuzz/test_mutation_corpus.py runs the same and requires no failure.)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

from corpus import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--root" in args:
        sys.exit(main(args))
    with tempfile.TemporaryDirectory(prefix="hetsim-corpus-") as root:
        sys.exit(main(["--root", root, *args]))
