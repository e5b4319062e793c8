"""The appeals model: volumes, shapes, channels, categories, lifecycles, bursts, and the store's merge.

Runs use the real demo pack; a simulated week is run once per module and shared.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from core.citypack import load_pack
from core.geo import haversine_m
from core.schemas import Appeal, AppealStatus, Channel
from feeds import get_feed
from feeds.runner import deliver
from feeds.sink import Sink
from simulator.effects import Effect, Effects
from simulator.engine import Emission, SimContext, Simulation
from simulator.models.appeals import TEMPLATES, AppealsModel, category_weights

PACK = load_pack()
ZONE = PACK.zone
#: Local midnight starting Monday 2 November 2026.
MONDAY = datetime(2026, 11, 2, tzinfo=ZONE).astimezone(UTC)
FORMAT = get_feed("appeals").format("open311")
KAZAKH_LETTERS = set("әғқңөұүһі")


def run(*, hours: float, effects: Sequence[Effect] = (), seed: int = 4, start: datetime = MONDAY) -> list[Emission]:
    """Every emission of the appeals model alone over ``hours`` from ``start``."""
    ctx = SimContext(pack=PACK, seed=seed, start=start, effects=Effects(list(effects)))
    return list(Simulation(ctx, [AppealsModel(ctx)]).run(start + timedelta(hours=hours)))


def parse(emissions: Sequence[Emission]) -> list[Appeal]:
    """Every record of every payload, through the real adapter; fails on any rejection."""
    records = []
    for emission in emissions:
        parsed = FORMAT.parse(emission.payload)
        assert parsed.rejected == [], parsed.rejected[:3]
        records.extend(parsed.records)
    return records


def opened(records: Sequence[Appeal]) -> list[Appeal]:
    """The first version of each request (the only one with ``state`` open)."""
    return [r for r in records if r.state == "open"]


def versions(records: Sequence[Appeal]) -> dict[str, list[Appeal]]:
    """Each request's versions in the order they were sent."""
    out: dict[str, list[Appeal]] = defaultdict(list)
    for record in records:
        out[record.request_id].append(record)
    return out


@pytest.fixture(scope="module")
def week() -> list[Emission]:
    """Monday to Sunday in November, plus three days for requests to close."""
    return run(hours=24 * 10)


@pytest.fixture(scope="module")
def week_records(week) -> list[Appeal]:
    return parse(week)


@pytest.fixture(scope="module")
def week_new(week_records) -> list[Appeal]:
    """Requests made in the first seven days."""
    return [r for r in opened(week_records) if r.requested_at < MONDAY + timedelta(days=7)]


# --- determinism and the real adapter -----------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes():
    a, b, c = run(hours=6, seed=1), run(hours=6, seed=1), run(hours=6, seed=2)
    assert [(e.at, e.payload) for e in a] == [(e.at, e.payload) for e in b]
    assert [e.payload for e in a] != [e.payload for e in c]


def test_every_payload_parses_inside_the_city_and_not_in_the_future(week, week_records):
    assert len(week_records) > 15_000
    for emission in week:
        assert emission.feed == "appeals" and emission.format == "open311"
        for record in FORMAT.parse(emission.payload).records:
            assert all(t <= emission.at for t in record.all_times())
    for record in opened(week_records):
        assert PACK.bounds.contains(record.lat, record.lon)
        assert PACK.district(record.district).contains(record.lat, record.lon)
        assert record.expected_at == record.requested_at + PACK.norms.appeal_deadline(record.category)


# --- volume, shape, mix -------------------------------------------------------------------------


def test_volumes_per_day(week_new):
    per_day = Counter(r.requested_at.astimezone(ZONE).weekday() for r in week_new)
    for weekday in range(5):
        assert 700 * 0.85 <= per_day[weekday] <= 700 * 1.15, per_day
    assert per_day[6] < per_day[5] < min(per_day[d] for d in range(5))
    assert 21_000 * 0.9 <= sum(per_day.values()) / 7 * 30 <= 21_000 * 1.1


def test_daily_shape(week_new):
    weekdays = [r for r in week_new if r.requested_at.astimezone(ZONE).weekday() < 5]
    by_hour = Counter(r.requested_at.astimezone(ZONE).hour for r in weekdays)
    busy = [by_hour[h] for h in (9, 10, 11, 12, 14, 15, 16, 17)]
    night = [by_hour[h] for h in range(0, 6)]
    assert min(busy) > 4 * max(night)
    assert by_hour[13] < statistics.mean(busy)
    assert sum(busy) > 0.5 * len(weekdays)


def test_channel_shares(week_new):
    n = len(week_new)
    shares = Counter(r.channel for r in week_new)
    expected = {Channel.PHONE: 0.45, Channel.SOCIAL: 0.25, Channel.MESSENGER: 0.10, Channel.MOBILE_APP: 0.10,
                Channel.WEB: 0.07, Channel.WALK_IN: 0.03}
    assert set(shares) == set(expected)
    for channel, share in expected.items():
        assert abs(shares[channel] / n - share) < max(0.012, 0.15 * share), channel


def test_category_mix_follows_the_pack_and_the_season(week_new):
    categories = Counter(r.category for r in week_new)
    assert set(categories) == set(PACK.norms.appeal_deadline_h)
    n = len(week_new)
    assert categories["heating"] / n > 0.10 and categories["roads"] / n > 0.12
    assert categories["noise"] / n < 0.06
    winter = category_weights(("heating", "water_supply", "noise"), 1)
    summer = category_weights(("heating", "water_supply", "noise"), 7)
    assert winter["heating"] > 4 * summer["heating"] and winter["noise"] < summer["noise"]
    codes = Counter(r.service_code for r in week_new)
    assert codes["RD-02"] + codes["RD-03"] > 0 and codes["HT-01"] > 0  # snow, cold radiators
    assert codes["RD-04"] == 0  # potholes are a warm-season complaint


def test_descriptions_in_russian_or_kazakh_from_the_templates(week_new):
    texts = {t.ru for ts in TEMPLATES.values() for t in ts} | {t.kk for ts in TEMPLATES.values() for t in ts}
    assert {r.description for r in week_new} <= texts
    kazakh = sum(bool(KAZAKH_LETTERS & set(r.description)) for r in week_new) / len(week_new)
    assert 0.2 < kazakh < 0.4
    assert all(r.service_name and r.agency and r.address for r in week_new)


# --- lifecycle ----------------------------------------------------------------------------------


def test_ids_are_unique_and_stable(week_new, week_records):
    ids = [r.request_id for r in week_new]
    assert len(ids) == len(set(ids))
    for r in week_new:
        day = r.requested_at.astimezone(ZONE).strftime("%Y%m%d")
        assert r.request_id.startswith(f"ALA-{day}-")
    assert {r.request_id for r in week_records} >= set(ids)


def test_versions_follow_the_workflow(week_records, week_new):
    allowed = {"open": {"assigned"}, "assigned": {"in_progress", "closed"}, "in_progress": {"closed"},
               "closed": {"reopened"}, "reopened": {"closed"}}
    by_id = versions(week_records)
    reopened = 0
    for request in week_new:
        chain = by_id[request.request_id]
        assert chain[0].state == "open" and chain[0].status is AppealStatus.OPEN
        for a, b in zip(chain, chain[1:], strict=False):
            assert b.state in allowed[a.state], [v.state for v in chain]
            assert b.updated_at >= a.updated_at and b.requested_at == a.requested_at
        reopened += any(v.state == "reopened" for v in chain)
    assert 0.01 < reopened / len(week_new) < 0.08


def test_close_times_and_overdue_share(week_records):
    by_id = versions(week_records)
    first_days = [c[0] for c in by_id.values()
                  if c[0].state == "open" and c[0].requested_at < MONDAY + timedelta(days=3)]
    medians = {}
    overdue = []
    for category in PACK.norms.appeal_deadline_h:
        requests = [r for r in first_days if r.category == category]
        closed = [by_id[r.request_id][-1] for r in requests if by_id[r.request_id][-1].status is AppealStatus.CLOSED]
        hours = [(c.updated_at - c.requested_at).total_seconds() / 3600 for c in closed]
        medians[category] = statistics.median(hours)
        if PACK.norms.appeal_deadline_h[category] <= 72:  # long enough after to know which are late
            overdue += [c.updated_at > r.expected_at for r, c in zip(requests, closed, strict=False)]
            assert len(closed) >= 0.95 * len(requests), category
    assert all(2 <= m <= 60 for m in medians.values()), medians
    assert medians["electricity"] < medians["roads"] and medians["water_supply"] < medians["other"]
    assert 0.08 <= sum(overdue) / len(overdue) <= 0.18


def test_assignment_waits_for_office_hours_except_utilities(week_records):
    by_id = versions(week_records)
    checked = 0
    for chain in by_id.values():
        assigned = next((v for v in chain if v.state == "assigned"), None)
        if assigned is None or chain[0].category in ("water_supply", "heating", "electricity"):
            continue
        close = next((v.updated_at for v in chain if v.state == "closed"), None)
        if close is None:
            continue
        hour = assigned.updated_at.astimezone(ZONE).hour
        made = chain[0].requested_at
        # in office hours, unless the request was closed so fast that it was assigned halfway to the close
        assert 8 <= hour < 20 or assigned.updated_at - made <= (close - made) / 2 + timedelta(seconds=1)
        checked += 1
    assert checked > 3000


@pytest.mark.redis
def test_the_store_merges_the_versions_into_the_latest_state(store):
    emissions = run(hours=72, seed=6)
    end = MONDAY + timedelta(hours=72)
    sink = Sink(store, bounds=PACK.bounds, max_future_s=900, batch_size=1000, clock=lambda: end)
    adapter = get_feed("appeals")
    for emission in emissions:
        result = deliver(sink, adapter, FORMAT, emission.payload, transport="simulator")
        assert result.rejected == 0 and result.accepted > 0
    latest = store.latest("appeals", "requests")
    by_id = versions(parse(emissions))
    assert set(latest) == set(by_id)
    states = Counter()
    for request_id, chain in by_id.items():
        final = chain[-1]
        merged = latest[request_id]
        states[final.state] += 1
        assert merged["status"] == final.status.value and merged["state"] == final.state
        assert merged["category"] == chain[0].category and merged["channel"] == chain[0].channel.value
        if final.status is AppealStatus.CLOSED:
            assert datetime.fromisoformat(merged["closed_at"]) == final.updated_at
        else:
            assert merged.get("closed_at") is None
    assert states["closed"] > 0.5 * len(by_id) and states["reopened"] > 0


# --- bursts -------------------------------------------------------------------------------------


def _burst(start: datetime) -> Effect:
    district = PACK.district("auezov")
    lat, lon = district.centroid
    return Effect(kind="appeal_burst", start=start, end=start + timedelta(hours=5), incident_id="water-1",
                  district=district.id, lat=lat, lon=lon, radius_m=900, ramp_s=1200,
                  params={"category": "water_supply", "rate_per_hour": 24})


def test_a_burst_appears_exactly_where_and_when_the_effect_says():
    effect = _burst(MONDAY + timedelta(hours=30))
    records = opened(parse(run(hours=40, effects=[effect])))
    near = [r for r in records if r.category == "water_supply"
            and haversine_m(r.lat, r.lon, effect.lat, effect.lon) <= 900]
    during = [r for r in near if effect.start <= r.requested_at < effect.end]
    before = [r for r in near if effect.start - timedelta(hours=5) <= r.requested_at < effect.start]
    after = [r for r in near if effect.end <= r.requested_at < effect.end + timedelta(hours=5)]
    expected = 24 * (5 - 20 / 60)
    assert 0.75 * expected <= len(during) <= 1.3 * expected
    assert len(before) <= 3 and len(after) <= 3
    by_channel = Counter(r.channel for r in during)
    assert (by_channel[Channel.PHONE] + by_channel[Channel.MESSENGER]) / len(during) >= 0.6
    codes = {t.code for t in TEMPLATES["water_supply"]}
    assert {r.service_code for r in during} <= codes
    assert all(r.district == "auezov" for r in during)


def test_nothing_changes_before_a_burst_or_with_effects_of_other_kinds():
    base = run(hours=12)
    start = MONDAY + timedelta(hours=9)
    with_burst = run(hours=12, effects=[_burst(start)])
    assert [e.payload for e in with_burst if e.at < start] == [e.payload for e in base if e.at < start]
    assert [e.payload for e in with_burst] != [e.payload for e in base]
    other = [Effect(kind="call_surge", start=MONDAY, end=MONDAY + timedelta(hours=12), incident_id="c",
                    lat=43.25, lon=76.9, radius_m=300, params={"complaint": "fall", "calls": 3}),
             Effect(kind="air_episode", start=MONDAY, end=MONDAY + timedelta(hours=12), incident_id="a",
                    params={"factor": 3.0})]
    assert [e.payload for e in run(hours=12, effects=other)] == [e.payload for e in base]


def test_payload_is_a_geo_report_array_with_our_extensions(week):
    items = json.loads(week[0].payload)
    assert isinstance(items, list)
    first = next(i for i in items if i["status"] == "open")
    assert {"service_request_id", "requested_datetime", "updated_datetime", "expected_datetime", "lat", "long",
            "service_code", "service_name", "description"} <= first.keys()
    assert first["extended_attributes"].keys() == {"district", "category", "channel"}
    assert first["requested_datetime"].endswith("+05:00")
