"""Analytics workers: RQ jobs over micro-batches of the feed streams."""
