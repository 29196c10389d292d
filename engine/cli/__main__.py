"""`python -m engine.cli ...` is the `journey` command."""

from engine.cli.app import main

main()
