"""`python -m eval.export`: export a network to ONNX (`eval.export.cli`)."""

import sys

from eval.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
