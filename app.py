"""``python app.py`` runs the whole situation center, exactly like ``sitcen run``.

The operations Dash app itself is built by :func:`dashboards.ops.create_app`; the public one by
:func:`dashboards.public.create_public_app`.
"""

from __future__ import annotations

import sys

from core.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
