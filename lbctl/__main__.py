"""``python -m lbctl``: the same as the ``lbctl`` command."""

from lbctl.cli import main

raise SystemExit(main())
