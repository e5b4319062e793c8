"""Feed adapters, one file each, registered here in one line each."""

from __future__ import annotations

from feeds.air import AirFeed
from feeds.ambulance import AmbulanceFeed
from feeds.appeals import AppealsFeed
from feeds.base import FeedAdapter
from feeds.traffic import TrafficFeed

REGISTRY: dict[str, type[FeedAdapter]] = {cls.name: cls for cls in (AirFeed, AppealsFeed, TrafficFeed, AmbulanceFeed)}


def get_feed(name: str) -> type[FeedAdapter]:
    """The adapter called ``name``.

    Raises:
        KeyError: no such feed; the message lists the feeds.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown feed {name!r}; feeds: {', '.join(sorted(REGISTRY))}") from None
