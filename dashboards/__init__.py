"""Dash apps: the operations app (pages in ``dashboards/pages``) and the public app."""
