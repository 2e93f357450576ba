"""`python -m corrective` runs the command line."""

from corrective.cli import main

main()
