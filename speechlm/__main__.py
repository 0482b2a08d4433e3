"""``python -m speechlm`` runs the CLI."""

import sys

from speechlm.cli import main

sys.exit(main())
