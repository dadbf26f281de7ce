"""`python -m abspose` = the `abspose` command."""

import sys

from abspose.cli import main

sys.exit(main())
