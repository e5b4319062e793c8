"""The feed adapter contract and the pure helpers every adapter parses with.

An adapter is one file: a :class:`FeedAdapter` subclass naming the feed, its expected
cadence and its formats. Each format is a pure function ``bytes -> Parsed``: no I/O, no
clock. A payload that cannot be read at all raises :class:`~core.errors.PayloadError`; a
payload that can be read is split into items, and each item becomes records or one
:class:`Rejected` whose ``error`` names the item and the problem. Valid items beside a bad
one are always kept.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import orjson

from core.errors import PayloadError, SchemaError
from core.schemas import Record

log = logging.getLogger(__name__)

#: Longest raw item text quoted back inside an error message.
_QUOTE = 60


@dataclass(frozen=True, slots=True)
class Rejected:
    """One item that did not become a record.

    Attributes:
        index: position of the item in its payload (0-based; CSV rows count from the first
            data row); -1 when the whole payload was rejected.
        code: short machine-readable reason, counted per feed (``bad_json``, ``missing_field`` ...).
        error: message for people: which record, what is wrong.
        raw: the item as received (or re-serialised for items inside a JSON array).
    """

    index: int
    code: str
    error: str
    raw: bytes


@dataclass(slots=True)
class Parsed:
    """What one payload turned into."""

    records: list[Record] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    ignored: int = 0
    """Items that are valid but not for this feed (e.g. fire engines in a dispatch file)."""
    record_index: list[int] = field(default_factory=list)
    """Item index of each record (parallel to ``records``), so later errors can name the item."""

    def extend(self, other: Parsed) -> None:
        """Append ``other`` (indexes are kept as they are)."""
        self.records.extend(other.records)
        self.rejected.extend(other.rejected)
        self.ignored += other.ignored
        self.record_index.extend(other.record_index)

    def index_of(self, position: int) -> int:
        """Item index of ``records[position]`` (its position if the parser did not say)."""
        return self.record_index[position] if position < len(self.record_index) else position


ParseFn = Callable[[bytes], Parsed]

#: An item's raw form: bytes, or a function making them (called only when the item is rejected).
Raw = bytes | Callable[[], bytes]


def raw_bytes(raw: Raw) -> bytes:
    """The bytes of ``raw``."""
    return raw() if callable(raw) else raw


@dataclass(frozen=True, slots=True)
class Format:
    """One wire format an adapter reads.

    Attributes:
        name: short name used on the command line and in ``?format=`` (``openaq``, ``csv``).
        parse: the pure parse function.
        content_types: HTTP content types that select this format by default.
        description: one line for ``sitcen feeds`` and the docs.
    """

    name: str
    parse: ParseFn
    content_types: tuple[str, ...] = ()
    description: str = ""


class FeedAdapter:
    """Base of the feed adapters: a name, an expected cadence, formats.

    Subclasses set the class attributes; they hold no state and do no I/O.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    expected_cadence_s: ClassVar[float]
    """How often the feed normally delivers; health calls a feed ``silent`` after 3 cadences."""
    formats: ClassVar[tuple[Format, ...]]

    @classmethod
    def format(cls, name: str | None = None, *, content_type: str | None = None) -> Format:
        """Pick a format by name, else by content type, else the first one.

        Raises:
            KeyError: ``name`` is not one of this feed's formats.
        """
        if name:
            for fmt in cls.formats:
                if fmt.name == name:
                    return fmt
            raise KeyError(f"feed {cls.name!r} has no format {name!r}; formats: "
                           f"{', '.join(f.name for f in cls.formats)}")
        if content_type:
            base = content_type.split(";")[0].strip().lower()
            for fmt in cls.formats:
                if base in fmt.content_types:
                    return fmt
        return cls.formats[0]

    @classmethod
    def content_types(cls) -> set[str]:
        """Every content type some format of this feed accepts."""
        return {ct for fmt in cls.formats for ct in fmt.content_types}

    @classmethod
    def parse(cls, payload: bytes | str, fmt: str | None = None) -> Parsed:
        """Parse ``payload`` in format ``fmt`` (default: the first format)."""
        data = payload.encode() if isinstance(payload, str) else payload
        return cls.format(fmt).parse(data)


# ---------------------------------------------------------------------------------------
# splitting payloads into items

JSON_TYPES = ("application/json", "application/x-ndjson", "application/ndjson", "application/jsonl",
              "application/geo+json", "text/json")
CSV_TYPES = ("text/csv", "application/csv")


def _loads(text: str | bytes) -> Any:
    # orjson is strict: NaN/Infinity, integers beyond 64 bits and nesting deeper than 1024
    # raise JSONDecodeError (a ValueError) instead of reaching the converters
    return orjson.loads(text)


def decode_text(payload: bytes) -> str:
    """Decode UTF-8 (a BOM is dropped).

    Raises:
        PayloadError: not UTF-8 text (binary garbage).
    """
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PayloadError(f"payload is not UTF-8 text (byte {err.start}: {payload[err.start:err.start + 4]!r})",
                           code="not_text") from None
    if "\x00" in text:
        raise PayloadError("payload contains NUL bytes; it is binary, not text", code="not_text")
    return text


def json_items(payload: bytes, *, unwrap: Sequence[str] = ()) -> Iterator[tuple[int, Raw, Any]]:
    """Split a JSON object, a JSON array or NDJSON into ``(index, raw, value)`` items.

    ``unwrap`` names keys whose list value holds the items when the payload is one object
    (OpenAQ's ``{"results": [...]}``).

    Raises:
        PayloadError: the payload is neither JSON nor NDJSON with at least one readable line.
    """
    text = decode_text(payload)
    stripped = text.strip()
    if not stripped:
        raise PayloadError("payload is empty", code="empty")
    try:
        value = _loads(stripped)
    except (ValueError, RecursionError) as whole_err:
        yield from _ndjson_items(stripped, whole_err)
        return
    if isinstance(value, dict):
        for key in unwrap:
            if isinstance(value.get(key), list):
                value = value[key]
                break
    if isinstance(value, list):
        for index, item in enumerate(value):
            # raw is serialised only if the item is rejected (the hot path never pays for it)
            yield index, partial(_dump, item), item
    else:
        yield 0, stripped.encode(), value


def _ndjson_items(text: str, whole_err: Exception) -> Iterator[tuple[int, bytes, Any]]:
    # NDJSON lines end at \n only: str.splitlines would also split inside strings holding
    # U+2028, \x1c and other characters JSON allows unescaped
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        raise PayloadError(f"payload is not JSON: {_short(whole_err)}", code="bad_json") from None
    items: list[tuple[int, bytes, Any]] = []
    good = 0
    for index, line in enumerate(lines):
        try:
            items.append((index, line.encode(), _loads(line)))
            good += 1
        except (ValueError, RecursionError) as err:
            items.append((index, line.encode(), BadJson(_short(err))))
    if not good:
        raise PayloadError(f"payload is neither JSON nor NDJSON: {_short(whole_err)}", code="bad_json")
    yield from items


@dataclass(frozen=True, slots=True)
class BadJson:
    """Placeholder for an item that could not be read (an NDJSON line that is not JSON, a
    broken CSV row); :func:`convert_items` rejects it with ``code``."""

    error: str
    code: str = "bad_json"


def _dump(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # not JSON-able (a converter handed over a foreign object)
        return repr(value).encode()


def _short(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def csv_items(payload: bytes, *, required: Iterable[str]) -> Iterator[tuple[int, Raw, Any]]:
    """Split CSV text with a header row into ``(index, raw_line, row)`` items.

    Raises:
        PayloadError: not text, no header, or the header lacks a ``required`` column.
    """
    text = decode_text(payload)
    # csv.reader on newline="" text: only \r, \n and \r\n end rows (str.splitlines would also
    # split on \u2028, \x1c ... inside cells), and quoted cells may hold line breaks
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise PayloadError("CSV payload has no header row", code="bad_csv") from None
    except csv.Error as err:
        raise PayloadError(f"CSV header cannot be read: {err}", code="bad_csv") from None
    header = [h.strip() for h in header]
    if not any(header):
        raise PayloadError("CSV payload has no header row", code="bad_csv")
    missing = [c for c in required if c not in header]
    if missing:
        raise PayloadError(f"CSV header lacks column(s) {', '.join(missing)}; it has "
                           f"{', '.join(header[:12])}{'...' if len(header) > 12 else ''}", code="bad_csv")
    index = -1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            index += 1
            yield index, b"", BadJson(f"CSV row cannot be read: {err}", "bad_csv")
            continue
        if not row or not any(cell.strip() for cell in row):
            continue
        index += 1
        raw = partial(_csv_line, row)
        if len(row) != len(header):
            yield index, raw, BadJson(f"row has {len(row)} cells, the header has {len(header)}", "bad_csv")
            continue
        yield index, raw, dict(zip(header, row, strict=True))


def _csv_line(row: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue().encode()


# ---------------------------------------------------------------------------------------
# turning items into records

Converter = Callable[[Any], "Record | Iterable[Record] | None"]


def convert_items(items: Iterable[tuple[int, Raw, Any]], convert: Converter, *,
                  id_keys: Sequence[str] = ("id",), what: str = "record") -> Parsed:
    """Run ``convert`` on each item; collect records and clear rejections.

    ``convert`` returns a record, several records, or ``None`` for an item that is valid but
    not for this feed (counted as ignored). It raises :class:`SchemaError` for a bad item.
    Any other exception from a hostile item is also caught and reported, so one item can
    never stop the rest of the payload.
    """
    out = Parsed()
    for index, raw, value in items:
        if isinstance(value, BadJson):
            label = describe(index, value, id_keys, what)
            out.rejected.append(Rejected(index, value.code, f"{label}: {value.error}", raw_bytes(raw)))
            continue
        try:
            result = convert(value)
        except SchemaError as err:
            label = describe(index, value, id_keys, what)
            out.rejected.append(Rejected(index, err.code, f"{label}: {err}", raw_bytes(raw)))
            continue
        except Exception as err:  # noqa: BLE001 - a hostile item must not stop the payload
            label = describe(index, value, id_keys, what)
            log.debug("converter failed on %s", label, exc_info=True)
            out.rejected.append(Rejected(index, "invalid", f"{label}: cannot be read ({type(err).__name__}: "
                                                           f"{_short(err)})", raw_bytes(raw)))
            continue
        if result is None:
            out.ignored += 1
        elif isinstance(result, Record):
            out.records.append(result)
            out.record_index.append(index)
        else:
            for record in result:
                out.records.append(record)
                out.record_index.append(index)
    return out


def describe(index: int, value: Any, id_keys: Sequence[str], what: str = "record") -> str:
    """``record 3 (station_id='kgmt_26')``: how errors name an item."""
    if isinstance(value, Mapping):
        for key in id_keys:
            ident = value.get(key)
            if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident).strip():
                text = str(ident)
                if len(text) > _QUOTE:
                    text = text[:_QUOTE] + "..."
                return f"{what} {index} ({key}={text!r})"
    return f"{what} {index}"


def require_mapping(value: Any, what: str = "record") -> Mapping[str, Any]:
    """Return ``value`` if it is a JSON object, else raise a clear :class:`SchemaError`."""
    if not isinstance(value, Mapping):
        raise SchemaError(f"{what} must be a JSON object, got {_json_type(value)}", code="bad_type")
    return value


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


def local_time(text: object, fmt: str, zone: str, name: str) -> datetime:
    """Parse a naive local time in ``fmt`` and attach the source's IANA ``zone``.

    For sources that publish local times without an offset (NYC 311, SF dispatch).
    """
    if not isinstance(text, str) or not text.strip():
        raise SchemaError(f"{name} is missing", code="missing_field")
    try:
        naive = datetime.strptime(text.strip(), fmt)  # noqa: DTZ007 - zone attached on the next line
    except ValueError:
        raise SchemaError(f"{name} {text[:40]!r} does not match {fmt}", code="bad_time") from None
    return naive.replace(tzinfo=ZoneInfo(zone))
