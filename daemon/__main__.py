"""`python -m daemon` runs the certmon CLI."""

from daemon.cli import main

raise SystemExit(main())
