"""``python3 -m switchboard_client --addr HOST:PORT``: runs the demo round against a
live server and exits 0 only if every answer was the expected one.
"""

import sys

from .demo import main

if __name__ == "__main__":
    sys.exit(main())
