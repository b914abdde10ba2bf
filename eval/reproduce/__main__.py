"""`python -m eval.reproduce`: the paper's reproduction report (`eval.reproduce.cli`)."""

import sys

from eval.reproduce.cli import main

if __name__ == "__main__":
    sys.exit(main())
