"""`make bench`: figures, not tests (see bench/core.py)."""

from bench.core import main

main()
