"""`studio`: the product's one command line, a thin layer over the programs (worker, endpoint, client, catalog,
dashboard).

Each command parses its arguments and calls one program's own function, importing it inside the command, so that
`studio --help` and a command that needs little start fast. It is the one package allowed to import every program
(tests/test_layering.py): a program may not reach another, but the command line starts them all.
"""

__version__ = "0.1.0"
"""The product's version: the one constant pyproject.toml reads for the package metadata (`studio --version`)."""
