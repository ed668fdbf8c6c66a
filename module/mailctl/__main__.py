"""`python -m mailctl` is the same as the `mailctl` command."""

from .cli import main

main()
