"""`python -m sessiongate` runs the CLI."""

from sessiongate.cli import main

main()
