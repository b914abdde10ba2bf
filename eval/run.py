"""`python -m eval.run`: score stylised pairs with the paper's losses (`eval.score.run`)."""

import sys

from eval.score.run import main

if __name__ == "__main__":
    sys.exit(main())
