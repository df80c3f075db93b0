"""``python -m fpsolve`` — the same as the ``fpsolve`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
