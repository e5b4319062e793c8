"""Citizens' appeals KPIs: open, new, overdue, closed within deadline, time to close, mix.

Pure functions over the merged latest appeal records (the dicts ``sc:latest:{appeals}:requests``
holds, or ``Appeal.to_dict()``): no I/O, no clock, ``now`` is passed in. Times may be ISO 8601
strings with an offset or aware datetimes. A record's current ``status`` decides whether it is
open, so a reopened appeal (status open again, ``closed_at`` cleared) counts as open.

Empty results: counts are 0, shares and times are None (no appeal to measure), the top
categories and channel counts are empty dicts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial

from core.citypack import Norms
from workers.kpi.definitions import KpiDefinition, define
from workers.kpi.stats import percentile

CITY = "city"
#: "New" appeals are those requested in this period before ``now``.
NEW_PERIOD = timedelta(hours=1)
#: How many categories ``appeals.top_categories`` lists.
TOP_CATEGORIES = 5
#: The key of appeals without a category or channel in the count KPIs.
UNKNOWN = "unknown"


_kpi = partial(define, "appeals")


KPIS: tuple[KpiDefinition, ...] = (
    _kpi("open", "count", "appeals whose current status is open (reopened ones included)", None, "down",
         "Open appeals", "Открытые обращения", "Ашық өтініштер"),
    _kpi("new_last_hour", "count", "appeals requested in (now − 1 h, now]", None, "down",
         "New appeals in the last hour", "Новые обращения за последний час", "Соңғы сағаттағы жаңа өтініштер"),
    _kpi("overdue", "count", "open appeals whose deadline < now; deadline = expected_at if given, "
         "else requested_at + the category's deadline (city pack norms)", 0.0, "down",
         "Overdue appeals", "Просроченные обращения", "Мерзімі өткен өтініштер"),
    _kpi("closed_within_deadline", "%", "100 × closed with closed_at ≤ deadline / all closed, over appeals "
         "closed in (now − window, now]", 90.0, "up",
         "Closed within deadline", "Закрыто в срок", "Мерзімінде жабылған"),
    _kpi("time_to_close_median", "h", "median of closed_at − requested_at over appeals closed in the window",
         None, "down", "Median time to close", "Медианное время закрытия", "Жабу уақытының медианасы"),
    _kpi("time_to_close_p90", "h", "90th percentile (linear, numpy's default) of closed_at − requested_at "
         "over appeals closed in the window", None, "down",
         "90th percentile time to close", "90-й процентиль времени закрытия", "Жабу уақытының 90-процентилі"),
    _kpi("top_categories", "count", f"the {TOP_CATEGORIES} most frequent categories of appeals requested "
         "in the window, with their counts", None, "down",
         "Top categories", "Основные категории", "Негізгі санаттар"),
    _kpi("by_channel", "count", "appeals requested in the window, counted by channel", None, "up",
         "Appeals by channel", "Обращения по каналам", "Арналар бойынша өтініштер"),
)


def compute(appeals: Iterable[Mapping[str, object]], *, norms: Norms, now: datetime,
            window: timedelta) -> dict[str, dict[str, object]]:
    """Every appeals KPI for the city and for each district present.

    Args:
        appeals: latest appeal records as dicts.
        norms: the city pack's norms (category deadlines).
        now: the time the KPIs are computed at (aware).
        window: closing and mix KPIs cover (now − window, now]: an appeal closed or requested
            exactly ``window`` before ``now`` is out, one at ``now`` is in.

    Returns:
        ``{"city": {kpi key: value}, district: {kpi key: value}, ...}``; appeals without a
        district count for the city only.
    """
    records = list(appeals)
    scopes: dict[str, list[Mapping[str, object]]] = {CITY: records}
    for record in records:
        district = record.get("district")
        if district:
            scopes.setdefault(str(district), []).append(record)
    return {scope: _scope_kpis(rows, norms=norms, now=now, window=window) for scope, rows in scopes.items()}


def _scope_kpis(appeals: Sequence[Mapping[str, object]], *, norms: Norms, now: datetime,
                window: timedelta) -> dict[str, object]:
    start = now - window
    open_ = [a for a in appeals if _is_open(a)]
    closed = [(a, t) for a in appeals if str(a.get("status")) == "closed"
              and _within(t := _closed_at(a), start, now)]
    requested = [a for a in appeals if _within(_requested_at(a), start, now)]
    hours = [(t - _requested_at(a)).total_seconds() / 3600 for a, t in closed]
    on_time = sum(1 for a, t in closed if t <= _deadline(a, norms))
    categories = Counter(str(a.get("category") or UNKNOWN) for a in requested)
    return {
        "appeals.open": len(open_),
        "appeals.new_last_hour": sum(1 for a in appeals if _within(_requested_at(a), now - NEW_PERIOD, now)),
        "appeals.overdue": sum(1 for a in open_ if _deadline(a, norms) < now),
        "appeals.closed_within_deadline": 100 * on_time / len(closed) if closed else None,
        "appeals.time_to_close_median": percentile(hours, 50),
        "appeals.time_to_close_p90": percentile(hours, 90),
        "appeals.top_categories": dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CATEGORIES]),
        "appeals.by_channel": dict(sorted(Counter(str(a.get("channel") or UNKNOWN) for a in requested).items())),
    }


def _is_open(appeal: Mapping[str, object]) -> bool:
    return str(appeal.get("status")) == "open"


def _time(appeal: Mapping[str, object], name: str) -> datetime | None:
    """An aware time field (ISO string or datetime), or None when absent."""
    value = appeal.get(name)
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _requested_at(appeal: Mapping[str, object]) -> datetime:
    """``requested_at``, which every appeal has.

    Raises:
        ValueError: the record has none.
    """
    requested = _time(appeal, "requested_at")
    if requested is None:
        raise ValueError(f"appeal {appeal.get('request_id')!r} has no requested_at")
    return requested


def _closed_at(appeal: Mapping[str, object]) -> datetime | None:
    """When a closed appeal closed: ``closed_at``, else ``updated_at`` (Open311's close time)."""
    return _time(appeal, "closed_at") or _time(appeal, "updated_at")


def _deadline(appeal: Mapping[str, object], norms: Norms) -> datetime:
    """``expected_at`` if given, else ``requested_at`` + the category's deadline."""
    expected = _time(appeal, "expected_at")
    if expected is not None:
        return expected
    category = appeal.get("category")
    return _requested_at(appeal) + norms.appeal_deadline(None if category is None else str(category))


def _within(t: datetime | None, start: datetime, end: datetime) -> bool:
    return t is not None and start < t <= end
