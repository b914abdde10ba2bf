"""`python -m eval.compare`: one table of several eval.run folders (`eval.score.compare`)."""

import sys

from eval.score.compare import main

if __name__ == "__main__":
    sys.exit(main())
