"""`python -m session_buddy.realtime`: the command-line server (see cli.py)."""

import sys

from session_buddy.realtime.cli import main

sys.exit(main())
