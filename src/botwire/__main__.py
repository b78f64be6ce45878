"""``python -m botwire``: the command line."""

from .cli import main

main()
