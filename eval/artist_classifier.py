"""`python -m eval.artist_classifier`: train the artist classifier of the deception rate (`eval.deception.classifier`)."""

import sys

from eval.deception.classifier import main

if __name__ == "__main__":
    sys.exit(main())
