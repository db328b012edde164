"""Compare AlphaMAS with the baselines (same as the ``compare-baselines`` console script).

    python examples/compare_baselines.py --help
    python examples/compare_baselines.py --quick
"""
import sys

from alpha_mas_avalanche.cli import main

if __name__ == "__main__":
    sys.exit(main())
