"""The one path every transport writes through: validate -> batch -> store -> dead letters.

Parsing is the adapter's job (pure); this module adds the checks that need context (city
bounds, the clock), writes accepted records in pipelined batches and sends every rejected
item, with its raw payload and reason, to the feed's dead-letter stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.errors import PayloadError, SchemaError
from core.schemas import Record
from core.store import DeadLetter, Store
from core.validate import Bounds, validate
from feeds.base import Parsed

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Error rows an accumulated result keeps (a looping replay must not grow without bound).
MAX_ERRORS_KEPT = 1000


def utc_now() -> datetime:
    """The wall clock, UTC."""
    return datetime.now(UTC)


@dataclass(slots=True)
class IngestResult:
    """What happened to one payload; the HTTP ingest answers with :meth:`as_json`."""

    accepted: int = 0
    rejected: int = 0
    ignored: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        """Accumulate ``other`` into this result (keeping at most ``MAX_ERRORS_KEPT`` error rows)."""
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.ignored += other.ignored
        room = MAX_ERRORS_KEPT - len(self.errors)
        if room > 0:
            self.errors.extend(other.errors[:room])

    def as_json(self, max_errors: int = 1000) -> dict[str, object]:
        """``{"accepted": n, "rejected": m, "ignored": k, "errors": [{"index": i, "error": ...}]}``."""
        out: dict[str, object] = {"accepted": self.accepted, "rejected": self.rejected, "ignored": self.ignored,
                                  "errors": self.errors[:max_errors]}
        if len(self.errors) > max_errors:
            out["errors_truncated"] = len(self.errors) - max_errors
        return out


class Sink:
    """Writes parsed payloads of any feed to Redis.

    Args:
        store: the Redis store.
        bounds: the city's bounding box; records outside it are rejected (None: no check).
        max_future_s: records further in the future than this are rejected.
        batch_size: records per Redis round trip.
        clock: injected for tests.
    """

    def __init__(self, store: Store, *, bounds: Bounds | None, max_future_s: float, batch_size: int,
                 clock: Clock = utc_now) -> None:
        self.store = store
        self.bounds = bounds
        self.max_future_s = max_future_s
        self.batch_size = batch_size
        self.clock = clock
        self._marked: set[str] = set()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-writer")

    def write(self, feed: str, parsed: Parsed, *, transport: str,
              transform: Callable[[Record], Record] | None = None) -> IngestResult:
        """Validate and store ``parsed``; dead-letter what is rejected. Never raises on bad data.

        ``transform`` (replay's time shift or relocation) is applied before validation.
        """
        self._mark(feed)
        now = self.clock()
        letters = [DeadLetter(r.index, r.code, r.error, r.raw) for r in parsed.rejected]
        good: list[Record] = []
        good_index: list[int] = []
        for position, record in enumerate(parsed.records):
            index = parsed.index_of(position)
            try:
                if transform is not None:
                    record = transform(record)
                validate(record, bounds=self.bounds, now=now, max_future_s=self.max_future_s)
            except SchemaError as err:
                letters.append(DeadLetter(index, err.code, f"record {index} ({record.entity_id}): {err}",
                                          record.to_json_bytes()))
                continue
            except Exception as err:  # noqa: BLE001 - a bug must cost one record, not the batch
                log.exception("validating record %s of %s failed", index, feed)
                letters.append(DeadLetter(index, "invalid", f"record {index}: cannot be checked "
                                          f"({type(err).__name__}: {err})", repr(record).encode()))
                continue
            good.append(record)
            good_index.append(index)
        accepted = self._store(feed, good, good_index, letters)
        self.store.dead_letter(feed, letters, transport=transport, ignored=parsed.ignored)
        letters.sort(key=lambda d: d.index)
        return IngestResult(accepted=accepted, rejected=len(letters), ignored=parsed.ignored,
                            errors=[{"index": d.index, "code": d.code, "error": d.error} for d in letters])

    def reject_payload(self, feed: str, err: PayloadError, raw: bytes, *, transport: str) -> IngestResult:
        """Dead-letter a payload that could not be read at all."""
        self._mark(feed)
        letter = DeadLetter(-1, err.code, f"payload rejected: {err}", raw)
        self.store.dead_letter(feed, [letter], transport=transport)
        return IngestResult(rejected=1, errors=[{"index": -1, "code": err.code, "error": letter.error}])

    def _store(self, feed: str, good: list[Record], good_index: list[int], letters: list[DeadLetter]) -> int:
        # Encoding batch k+1 overlaps with Redis running batch k: the writer thread waits on
        # the socket without the GIL, so CPU and Redis work proceed side by side.
        accepted = 0
        pending: tuple[Future[list[int]], int, int] | None = None
        for start in range(0, len(good), self.batch_size):
            end = min(len(good), start + self.batch_size)
            prepared = self.store.prepare(feed, good[start:end])
            if pending is not None:
                accepted += self._collect(pending, good, good_index, letters)
            pending = (self._writer.submit(self.store.execute, prepared), start, end)
        if pending is not None:
            accepted += self._collect(pending, good, good_index, letters)
        return accepted

    @staticmethod
    def _collect(pending: tuple[Future[list[int]], int, int], good: list[Record], good_index: list[int],
                 letters: list[DeadLetter]) -> int:
        future, start, end = pending
        dups = future.result()
        for position in dups:
            record = good[start + position]
            index = good_index[start + position]
            letters.append(DeadLetter(index, "duplicate", f"record {index} ({record.entity_id}): duplicate of "
                                      f"a record already stored (same id, time and content)",
                                      record.to_json_bytes()))
        return end - start - len(dups)

    def _mark(self, feed: str) -> None:
        if feed not in self._marked:
            self.store.mark_feed(feed)
            self._marked.add(feed)
