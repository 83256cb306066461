"""`python -m studio`: the same command line as the installed `studio` script, for a checkout with no install."""

import sys

from studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
