"""`python -m catalog …`: the catalogue's old command line, kept for scripts already written; `studio catalog …` is
the command now. It says so once on stderr, then runs the same code (catalog/cli.py) with the same arguments."""

import shlex
import sys

from catalog.cli import main

if __name__ == "__main__":
    print(f"note: this is now `{shlex.join(['studio', 'catalog', *sys.argv[1:]])}`", file=sys.stderr)
    sys.exit(main(prog="python -m catalog"))
