"""The ``sfai`` console script. Ctrl-C while the command line's modules load (half a second) ends in one line, as
it does once a command runs (``serving.cli.main.run``), not in an import's traceback."""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from serving.cli.main import run as main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted (Ctrl-C)\n")
        sys.exit(130)
    main()
