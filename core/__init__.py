"""Shared core of the situation center: settings, Redis key names, record schemas, storage."""
