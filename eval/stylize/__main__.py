"""`python -m eval.stylize`: stylise every content x style pair (`eval.stylize.cli`)."""

import sys

from eval.stylize.cli import main

if __name__ == "__main__":
    sys.exit(main())
