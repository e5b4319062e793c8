"""Project exceptions. One flat hierarchy; raise with ``from err`` to keep the cause."""

from __future__ import annotations


class SituationCenterError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(SituationCenterError):
    """A setting or a city pack is invalid. Fatal at start-up."""


class SchemaError(SituationCenterError, ValueError):
    """One record is invalid. The message names the field and the problem.

    Attributes:
        code: a short machine-readable reason (``missing_field``, ``bad_type``,
            ``out_of_range``, ``out_of_bounds``, ``future_time``, ``bad_time``, ...),
            used to count dead letters by reason.
    """

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


class PayloadError(SituationCenterError, ValueError):
    """A whole payload cannot be read at all (not JSON, not CSV, not protobuf).

    The HTTP ingest answers 400 with this message; transports dead-letter the payload.
    """

    def __init__(self, message: str, *, code: str = "unparseable") -> None:
        super().__init__(message)
        self.code = code


class FeedError(SituationCenterError):
    """A feed transport failed (network, upstream)."""


class RetryableFeedError(FeedError):
    """Worth retrying after a backoff: timeouts, refused connections, 5xx answers."""


class FatalFeedError(FeedError):
    """Retrying cannot help: bad URL, 4xx answers other than 408/429, bad configuration."""
