"""`python -m qvl_local ...` is the `qvl-local` command."""
import sys

from .cli import main

sys.exit(main())
