"""`python -m eval.deception`: the deception rate of an eval.run folder (`eval.deception.rate`)."""

import sys

from eval.deception.rate import main

if __name__ == "__main__":
    sys.exit(main())
