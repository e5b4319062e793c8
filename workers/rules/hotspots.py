"""Space-time clusters of appeals and ambulance calls, and city-wide surges of one complaint.

:class:`AppealHotspot` and :class:`CallCluster` run the same prospective space-time scan
(:class:`SpaceTimeScan`), one per group (an appeal category, an ambulance complaint):

* *Zones* are circles of a few radii centred on the grid cells (``cell_m``) where the group's
  recent cases are; a zone is the set of cells whose centres lie within the radius.
* *Windows* are the last ``windows_min`` minutes before ``now``.
* *Expected* count: conditional on the group's own city-wide count ``N`` in the window (so the
  daily volume cycle and the group's current rate need no model), a case falls in the zone with
  the zone's spatial share ``s``: the share of where cases usually come from, learnt online from
  every *other* group's cases (an exponentially forgotten count per cell, so a burst of one group
  never teaches its own prior), shrunk towards the population prior of the pack (each
  district's population spread evenly over its cells) as a gamma-Poisson posterior mean with
  ``prior_weight`` pseudo-cases per zone, and never below ``min_share_factor`` of the
  population share (an underestimated share is what makes false alarms).
* *Test*: ``y`` cases in the zone, ``P(Y >= y)`` for ``Y ~ Binomial(N, s)`` (Kulldorff's
  conditional Poisson model); significant below a Bonferroni threshold: an alarm budget per
  day (``alarms_per_day``) over the number of roughly independent tests a day makes (groups x
  disjoint zones of the city x disjoint windows of a day). Besides, ``y`` must reach the
  window's minimum count: a few appeals from one yard are ordinary city life, however unlikely
  they are under a smooth prior.
* The most significant zone is taken, its cases removed, and the search repeated
  (secondary clusters, up to ``max_clusters``). A cluster continues an active episode of its
  group whose centre is within ``match_m``; otherwise it opens a new one keyed by group and
  centre.

:class:`ComplaintSurge` watches the share of one complaint (or a group of complaints) among all
ambulance calls: a one-sided binomial test of the share in the last window against the share in
the previous ``baseline_h`` hours. The share is self-normalising against the daily and weekly
volume cycle and needs no long history (a few hours suffice); the time an episode is active is
kept out of later baselines, so an eight-hour surge does not become its own baseline.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from workers.rules.base import WARNING, Detector, Episodes, Event, RuleContext, parse_time

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQ = 111_320.0
DAY_S = 86_400.0

# --- statistics -----------------------------------------------------------------------------------


def binom_sf(y: int, n: int, p: float) -> float:
    """``P(Y >= y)`` for ``Y ~ Binomial(n, p)``, summed from the tail (accurate for tiny values)."""
    if y <= 0:
        return 1.0
    if y > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logp, log1mp = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    total = 0.0
    mode = n * p
    for i in range(y, n + 1):
        term = math.exp(base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * logp + (n - i) * log1mp)
        total += term
        if i > mode and term < total * 1e-12:
            break
    return min(1.0, total)


def poisson_llr(y: float, n: float, e: float) -> float:
    """Kulldorff's log-likelihood ratio of a zone with ``y`` of ``n`` cases where ``e`` were expected."""
    if y <= e or e <= 0:
        return 0.0
    inside = y * math.log(y / e)
    outside = (n - y) * math.log((n - y) / (n - e)) if n - y > 0 and n - e > 0 else 0.0
    return inside + outside


# --- the scan -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cluster:
    """One significant zone of one group: where, when, how many, how unlikely."""

    group: str
    lat: float
    lon: float
    radius_m: float
    window_min: float
    count: int
    total: int
    share: float
    expected: float
    p_value: float
    llr: float
    threshold: float
    first_t: float
    last_t: float
    district: str | None


class SpaceTimeScan:
    """Prospective space-time scan of point cases by group (see the module docstring).

    Args:
        pack: the city pack (districts with population for the prior; may be None).
        cell_m: grid cell size, metres.
        radii_m: zone radii, metres.
        windows_min: windows, minutes.
        min_counts: the minimum case count of each window.
        prior_weight: pseudo-cases of the population prior in each zone (gamma-Poisson shrinkage).
        prior_days: time constant of the learnt spatial prior, days.
        alarms_per_day: false-alarm budget per day for the Bonferroni threshold.
        groups: expected number of groups (for the threshold).
        max_clusters: clusters sought per group and evaluation.
        min_share_factor: a zone's share is never below this times its population share.
    """

    def __init__(self, pack: Any, *, cell_m: float, radii_m: Sequence[float], windows_min: Sequence[float],
                 min_counts: Sequence[int], prior_weight: float, prior_days: float, alarms_per_day: float,
                 groups: int, max_clusters: int, min_share_factor: float = 0.25) -> None:
        if len(windows_min) != len(min_counts):
            raise ValueError("windows_min and min_counts must have the same length")
        self.pack = pack
        self.cell_m = float(cell_m)
        self.radii = tuple(float(r) for r in radii_m)
        self.windows_s = tuple(60.0 * w for w in windows_min)
        self.min_counts = tuple(int(c) for c in min_counts)
        self.max_window_s = max(self.windows_s)
        self.prior_weight = float(prior_weight)
        self.prior_tau_s = prior_days * DAY_S
        self.max_clusters = max_clusters
        self.min_share_factor = min_share_factor
        center = getattr(pack, "center", None) or (43.25, 76.9)
        self.lat0, self.lon0 = center
        self.ky = M_PER_DEG_LAT
        self.kx = M_PER_DEG_LON_EQ * math.cos(math.radians(self.lat0))
        # zone offsets (in cells) by radius
        self.offsets: list[tuple[tuple[int, int], ...]] = []
        for r in self.radii:
            k = int(r // self.cell_m) + 1
            lim = (r / self.cell_m) ** 2 + 1e-9
            self.offsets.append(tuple((dx, dy) for dx in range(-k, k + 1) for dy in range(-k, k + 1)
                                      if dx * dx + dy * dy <= lim))
        self.r2_cells = tuple((r / self.cell_m) ** 2 + 1e-9 for r in self.radii)
        # population prior: density per m^2 by district, as a share of the city's people
        districts = [d for d in getattr(pack, "districts", ()) if d.area_m2 > 0]
        people = [float(d.population or 0) for d in districts]
        if districts and sum(people) <= 0:
            people = [d.area_m2 for d in districts]
        total_people = sum(people)
        self._density = {d.id: p / total_people / d.area_m2 for d, p in zip(districts, people, strict=True)} \
            if total_people > 0 else {}
        area = sum(d.area_m2 for d in districts) or 800e6
        self._uniform_cell = self.cell_m ** 2 / area  # when the pack has no districts
        self._pop_cell: dict[tuple[int, int], float] = {}
        # learnt prior: forgotten counts per cell, in total and by group
        self._emp_total: dict[tuple[int, int], float] = {}
        self._emp_group: dict[str, dict[tuple[int, int], float]] = {}
        self._emp_sum = 0.0
        self._emp_group_sum: dict[str, float] = {}
        self._decayed_at: float | None = None
        self._share_cache: dict[tuple[str, tuple[int, int], int], float] = {}
        # recent cases: (t, cell, lat, lon, district) per group, in arrival order
        self.cases: dict[str, deque[tuple[float, tuple[int, int], float, float, str | None]]] = {}
        # Bonferroni: zones of each radius tiling the city, windows tiling a day
        zones = sum(area / (math.pi * r * r) for r in self.radii)
        per_day = sum(DAY_S / w for w in self.windows_s)
        self.tests_per_day = max(1.0, zones * per_day * max(1, groups))
        self.threshold = alarms_per_day / self.tests_per_day

    # -- geometry --------------------------------------------------------------------------------

    def cell_of(self, lat: float, lon: float) -> tuple[int, int]:
        """Grid cell of a point."""
        return (math.floor((lon - self.lon0) * self.kx / self.cell_m),
                math.floor((lat - self.lat0) * self.ky / self.cell_m))

    def cell_centre(self, cell: tuple[int, int]) -> tuple[float, float]:
        """``(lat, lon)`` of a cell's centre."""
        return (self.lat0 + (cell[1] + 0.5) * self.cell_m / self.ky,
                self.lon0 + (cell[0] + 0.5) * self.cell_m / self.kx)

    def _pop(self, cell: tuple[int, int]) -> float:
        value = self._pop_cell.get(cell)
        if value is None:
            if self._density and self.pack is not None:
                lat, lon = self.cell_centre(cell)
                district = self.pack.district_at(lat, lon)
                value = self._density.get(district.id, 0.0) * self.cell_m ** 2 if district is not None else 0.0
            else:
                value = self._uniform_cell
            self._pop_cell[cell] = value
        return value

    # -- learning --------------------------------------------------------------------------------

    def add(self, group: str, t: float, lat: float, lon: float, district: str | None, now: float) -> None:
        """A new case of ``group`` at time ``t`` (epoch s) and place."""
        self._decay(now)
        cell = self.cell_of(lat, lon)
        w = math.exp((t - self._decayed_at) / self.prior_tau_s) if self._decayed_at is not None else 1.0
        w = min(w, 1.0)
        self._emp_total[cell] = self._emp_total.get(cell, 0.0) + w
        emp = self._emp_group.get(group)
        if emp is None:
            emp = self._emp_group[group] = {}
            self._emp_group_sum[group] = 0.0
        emp[cell] = emp.get(cell, 0.0) + w
        self._emp_sum += w
        self._emp_group_sum[group] += w
        if now - t <= self.max_window_s:
            queue = self.cases.get(group)
            if queue is None:
                queue = self.cases[group] = deque()
            queue.append((t, cell, lat, lon, district))

    def _decay(self, now: float) -> None:
        """Forget the learnt prior a little, once an hour (and drop the cached zone shares)."""
        if self._decayed_at is None:
            self._decayed_at = now
            return
        dt = now - self._decayed_at
        if dt < 3600.0:
            return
        f = math.exp(-dt / self.prior_tau_s)
        for table in (self._emp_total, *self._emp_group.values()):
            for cell in list(table):
                v = table[cell] * f
                if v < 1e-3:
                    del table[cell]
                else:
                    table[cell] = v
        self._emp_sum *= f
        for g in self._emp_group_sum:
            self._emp_group_sum[g] *= f
        self._decayed_at = now
        self._share_cache.clear()

    def share(self, group: str, cell: tuple[int, int], ri: int) -> float:
        """Expected share of ``group``'s cases in the zone of radius index ``ri`` around ``cell``."""
        key = (group, cell, ri)
        value = self._share_cache.get(key)
        if value is not None:
            return value
        emp_total, emp_group = self._emp_total, self._emp_group.get(group, {})
        cx, cy = cell
        emp = pop = 0.0
        for dx, dy in self.offsets[ri]:
            c = (cx + dx, cy + dy)
            emp += emp_total.get(c, 0.0) - emp_group.get(c, 0.0)
            pop += self._pop(c)
        others = max(0.0, self._emp_sum - self._emp_group_sum.get(group, 0.0))
        # gamma-Poisson per zone: the population prior is worth prior_weight cases in this zone,
        # whatever its size, so a zone expected to hold one case is hardly moved by seeing none
        k = self.prior_weight
        if pop <= 0.0:
            value = max(0.0, emp) / (others + k) if others > 0 else 0.0
        else:
            value = (max(0.0, emp) + k) / (others + k / pop)
        value = min(1.0, max(self.min_share_factor * pop, value, 1e-9))
        self._share_cache[key] = value
        return value

    # -- scanning --------------------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Drop cases older than the longest window."""
        limit = now - self.max_window_s
        for queue in self.cases.values():
            while queue and queue[0][0] < limit:
                queue.popleft()

    def scan(self, group: str, now: float) -> list[Cluster]:
        """The significant clusters of ``group`` as of ``now``, most significant first."""
        self._decay(now)
        queue = self.cases.get(group)
        if not queue:
            return []
        limit = now - self.max_window_s
        while queue and queue[0][0] < limit:
            queue.popleft()
        cases = [c for c in queue if c[0] <= now]
        starts = [now - w for w in self.windows_s]
        totals = [sum(1 for c in cases if c[0] >= s) for s in starts]
        out: list[Cluster] = []
        used: set[int] = set()
        for _ in range(self.max_clusters):
            best = self._best(group, cases, used, starts, totals)
            if best is None:
                break
            cluster, members = best
            out.append(cluster)
            used.update(members)
        return out

    def _best(self, group: str, cases: list[Any], used: set[int], starts: list[float], totals: list[int]
              ) -> tuple[Cluster, list[int]] | None:
        """The most significant zone among the unused cases (and the indexes of its cases)."""
        free = [i for i in range(len(cases)) if i not in used]
        need = min(self.min_counts)
        if len(free) < need:
            return None
        nw = len(starts)
        by_cell: dict[tuple[int, int], list[int]] = {}
        for i in free:
            by_cell.setdefault(cases[i][1], []).append(i)
        cells = list(by_cell)
        candidates: list[tuple[float, tuple[int, int], int, int, list[int], int, int, float]] = []
        for centre in cells:
            cx, cy = centre
            near = []
            for cell in cells:
                dx, dy = cell[0] - cx, cell[1] - cy
                d2 = dx * dx + dy * dy
                if d2 <= self.r2_cells[-1]:
                    near.append((d2, cell))
            if sum(len(by_cell[c]) for _, c in near) < need:
                continue
            for ri, r2 in enumerate(self.r2_cells):
                members = [i for d2, cell in near if d2 <= r2 for i in by_cell[cell]]
                if len(members) < need:
                    continue
                s = self.share(group, centre, ri)
                for wi in range(nw):
                    start = starts[wi]
                    inside = [i for i in members if cases[i][0] >= start]
                    y = len(inside)
                    if y < self.min_counts[wi]:
                        continue
                    n = totals[wi]
                    llr = poisson_llr(y, n, n * s)
                    if llr > 0:
                        candidates.append((llr, centre, ri, wi, inside, y, n, s))
        # Kulldorff's choice: the zone of highest likelihood ratio that is significant (p-values
        # only for the few best, they are the costly part)
        candidates.sort(key=lambda c: -c[0])
        best = None
        for llr, centre, ri, wi, inside, y, n, s in candidates[:8]:
            pv = binom_sf(y, n, s)
            if pv <= self.threshold:
                best = (pv, -llr, (centre, ri, wi, inside, y, n, s, llr))
                break
        if best is None:
            return None
        p = best[0]
        centre, ri, wi, inside, y, n, s, llr = best[2]
        lat = sum(cases[i][2] for i in inside) / y
        lon = sum(cases[i][3] for i in inside) / y
        districts: dict[str, int] = {}
        for i in inside:
            d = cases[i][4]
            if d:
                districts[d] = districts.get(d, 0) + 1
        district = max(districts, key=lambda k: districts[k]) if districts else None
        if district is None and self.pack is not None:
            found = self.pack.district_at(lat, lon)
            district = found.id if found is not None else None
        times = [cases[i][0] for i in inside]
        cluster = Cluster(group=group, lat=lat, lon=lon, radius_m=self.radii[ri],
                          window_min=self.windows_s[wi] / 60.0, count=y, total=n, share=s, expected=n * s,
                          p_value=p, llr=llr, threshold=self.threshold, first_t=min(times), last_t=max(times),
                          district=district)
        # remove every case of the zone (all windows) from the secondary search
        r2 = self.r2_cells[ri]
        members = [i for i in free
                   if (cases[i][1][0] - centre[0]) ** 2 + (cases[i][1][1] - centre[1]) ** 2 <= r2]
        return cluster, members


# --- shared detector plumbing ---------------------------------------------------------------------


def _iso_t(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


class _ScanDetector(Detector):
    """A detector running a :class:`SpaceTimeScan` over one kind of records (appeals or calls)."""

    kind: ClassVar[str] = ""
    signal: ClassVar[str] = ""

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        super().__init__(params, ctx)
        p = params
        self.scan = SpaceTimeScan(ctx.pack if ctx is not None else None, cell_m=p.cell_m, radii_m=p.radii_m,
                                  windows_min=p.windows_min, min_counts=p.min_counts, prior_weight=p.prior_weight,
                                  prior_days=p.prior_days, alarms_per_day=p.alarms_per_day, groups=p.groups,
                                  max_clusters=p.max_clusters, min_share_factor=p.min_share_factor)
        self.episodes = Episodes(self.name, self.signal, clear_after=timedelta(minutes=p.clear_after_min),
                                 update_every=timedelta(minutes=p.update_every_min))
        self._seen: dict[str, float] = {}
        self._seen_order: deque[tuple[float, str]] = deque()
        self._dirty: set[str] = set()
        self._last_eval: dict[str, float] = {}
        self._centres: dict[str, tuple[str, float, float]] = {}  # episode key -> (group, lat, lon)
        self._keep_s = p.keep_ids_h * 3600.0

    # subclasses: (id, epoch s, group, lat, lon, district) of a new case, or None
    def _case(self, record: Mapping[str, Any]) -> tuple[str, str, str, float, float, str | None] | None:
        raise NotImplementedError

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        kind = self.kind
        seen = self._seen
        now_s = now.timestamp()
        for record in records:
            if record.get("kind") != kind:
                continue
            case = self._case(record)
            if case is None:
                continue
            case_id, when, group, lat, lon, district = case
            if case_id in seen:
                continue
            try:
                t = parse_time(when).timestamp()
            except (TypeError, ValueError):
                continue
            if now_s - t > self._keep_s:
                continue
            seen[case_id] = t
            self._seen_order.append((now_s, case_id))
            self.scan.add(group, t, lat, lon, district, now_s)
            self._dirty.add(group)
        return self._evaluate(now)

    def tick(self, now: datetime) -> list[Event]:
        return self._evaluate(now)

    def _forget_ids(self, now_s: float) -> None:
        order, seen, limit = self._seen_order, self._seen, now_s - self._keep_s
        while order and order[0][0] < limit:
            _, case_id = order.popleft()
            seen.pop(case_id, None)

    def _evaluate(self, now: datetime) -> list[Event]:
        now_s = now.timestamp()
        every = self.params.eval_every_s
        active_groups = {g for g, _, _ in self._centres.values()}
        due = [g for g in self._dirty | active_groups if now_s - self._last_eval.get(g, -math.inf) >= every]
        if not due:
            return []
        self._forget_ids(now_s)
        self.scan.expire(now_s)
        out: list[Event] = []
        for group in sorted(due):
            self._dirty.discard(group)
            self._last_eval[group] = now_s
            out.extend(self._report(group, self.scan.scan(group, now_s), now))
        return out

    def _report(self, group: str, clusters: list[Cluster], now: datetime) -> list[Event]:
        out: list[Event] = []
        match_m = self.params.match_m
        taken: set[str] = set()
        for cluster in clusters:
            key = None
            best = math.inf
            for k, (g, lat, lon) in self._centres.items():
                if g != group or k in taken:
                    continue
                d = _flat_m(lat, lon, cluster.lat, cluster.lon)
                if d <= match_m and d < best:
                    key, best = k, d
            if key is None:
                key = f"{group}@{cluster.lat:.4f},{cluster.lon:.4f}"
            taken.add(key)
            self._centres[key] = (group, cluster.lat, cluster.lon)
            event = self.episodes.report(
                key, True, now, onset=datetime.fromtimestamp(cluster.first_t, UTC), severity=WARNING,
                district=cluster.district, lat=round(cluster.lat, 6), lon=round(cluster.lon, 6),
                radius_m=cluster.radius_m, evidence=self._evidence(cluster, now))
            if event is not None:
                out.append(event)
        for key in [k for k, (g, _, _) in self._centres.items() if g == group and k not in taken]:
            event = self.episodes.report(key, False, now)
            if event is not None:
                out.append(event)
            if key not in self.episodes.active:
                del self._centres[key]
        return out

    def _evidence(self, c: Cluster, now: datetime) -> dict[str, Any]:
        return {
            self.group_field: c.group, "count": c.count, "expected": round(c.expected, 4),
            "citywide_count": c.total, "zone_share": round(c.share, 6), "p_value": c.p_value,
            "p_threshold": c.threshold, "llr": round(c.llr, 3), "centre": [round(c.lat, 6), round(c.lon, 6)],
            "radius_m": c.radius_m, "window_min": c.window_min,
            "window_start": _iso_t(now.timestamp() - 60.0 * c.window_min), "window_end": _iso_t(now.timestamp()),
            "first_case": _iso_t(c.first_t), "last_case": _iso_t(c.last_t), "unit": self.unit,
        }

    group_field: ClassVar[str] = "group"
    unit: ClassVar[str] = "cases"


def _flat_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    kx = M_PER_DEG_LON_EQ * math.cos(math.radians(lat1))
    return math.hypot((lon2 - lon1) * kx, (lat2 - lat1) * M_PER_DEG_LAT)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# --- appeals --------------------------------------------------------------------------------------


class AppealHotspot(_ScanDetector):
    """Space-time clusters of appeals of one category (a burst of 'no water' around one place).

    Each appeal counts once (by ``request_id``), at ``requested_at``, in its category. WARNING when
    a zone's count is significant (see the module docstring); evidence: category, count,
    expected, p-value and threshold, log-likelihood ratio, centre, radius, window.
    """

    name = "appeal_hotspot"
    feeds = frozenset({"appeals"})
    kind = "requests"
    signal = "appeals.burst"
    group_field = "category"
    unit = "appeals"

    @dataclass(frozen=True)
    class Params:
        """Parameters of :class:`AppealHotspot` (defaults calibrated on the simulator)."""

        cell_m: float = 250.0
        """Grid cell size, metres."""
        radii_m: tuple[float, ...] = (500.0, 1000.0, 1500.0)
        """Zone radii, metres."""
        windows_min: tuple[float, ...] = (30.0, 60.0, 120.0)
        """Windows, minutes (before now)."""
        min_counts: tuple[int, ...] = (5, 6, 9)
        """Minimum appeals in a zone for each window: three appeals from one yard are ordinary."""
        alarms_per_day: float = 0.05
        """False-alarm budget per day; the p-value threshold is this over the tests made per day."""
        groups: int = 9
        """Categories counted in the Bonferroni threshold."""
        prior_weight: float = 5.0
        """Pseudo-appeals of the population prior in each zone (shrinkage of the learnt share)."""
        min_share_factor: float = 0.25
        """A zone's expected share is never below this times its population share."""
        prior_days: float = 14.0
        """Time constant of the learnt spatial prior, days."""
        max_clusters: int = 3
        """Clusters sought per category and evaluation."""
        match_m: float = 1500.0
        """A cluster within this distance of an active episode's centre continues it."""
        eval_every_s: float = 60.0
        """Evaluate a category at most this often (seconds)."""
        clear_after_min: float = 30.0
        """An episode closes after this long without a significant cluster."""
        update_every_min: float = 15.0
        """Fresh evidence of an active episode at most this often."""
        keep_ids_h: float = 72.0
        """Request ids remembered this long (updates of older appeals are ignored)."""

    def _case(self, record: Mapping[str, Any]) -> tuple[str, str, str, float, float, str | None] | None:
        request_id, when = record.get("request_id"), record.get("requested_at")
        lat, lon = _number(record.get("lat")), _number(record.get("lon"))
        if request_id is None or not when or lat is None or lon is None:
            return None
        return str(request_id), when, str(record.get("category") or "other"), lat, lon, record.get("district")


# --- ambulance calls ------------------------------------------------------------------------------


class CallCluster(_ScanDetector):
    """Space-time clusters of ambulance calls of one complaint (road trauma at a pile-up).

    Each call counts once (by ``call_id``), at ``times.call_received``, in its complaint group.
    """

    name = "call_cluster"
    feeds = frozenset({"ambulance"})
    kind = "calls"
    signal = "ambulance.calls"
    group_field = "complaint"
    unit = "calls"

    @dataclass(frozen=True)
    class Params:
        """Parameters of :class:`CallCluster` (defaults calibrated on the simulator)."""

        cell_m: float = 250.0
        """Grid cell size, metres."""
        radii_m: tuple[float, ...] = (250.0, 500.0, 1000.0)
        """Zone radii, metres."""
        windows_min: tuple[float, ...] = (30.0, 60.0)
        """Windows, minutes (before now)."""
        min_counts: tuple[int, ...] = (3, 4)
        """Minimum calls in a zone for each window."""
        alarms_per_day: float = 0.05
        """False-alarm budget per day; the p-value threshold is this over the tests made per day."""
        groups: int = 10
        """Complaints counted in the Bonferroni threshold."""
        prior_weight: float = 5.0
        """Pseudo-calls of the population prior in each zone (shrinkage of the learnt share)."""
        min_share_factor: float = 0.25
        """A zone's expected share is never below this times its population share."""
        prior_days: float = 14.0
        """Time constant of the learnt spatial prior, days."""
        max_clusters: int = 2
        """Clusters sought per complaint and evaluation."""
        match_m: float = 1000.0
        """A cluster within this distance of an active episode's centre continues it."""
        eval_every_s: float = 30.0
        """Evaluate a complaint at most this often (seconds)."""
        clear_after_min: float = 30.0
        """An episode closes after this long without a significant cluster."""
        update_every_min: float = 15.0
        """Fresh evidence of an active episode at most this often."""
        keep_ids_h: float = 24.0
        """Call ids remembered this long (later updates of a call are ignored)."""

    def _case(self, record: Mapping[str, Any]) -> tuple[str, str, str, float, float, str | None] | None:
        times = record.get("times")
        when = times.get("call_received") if isinstance(times, Mapping) else None
        call_id = record.get("call_id")
        if call_id is None or not when:
            return None
        lat, lon = _number(record.get("lat")), _number(record.get("lon"))
        if lat is None or lon is None:
            return None
        return str(call_id), when, str(record.get("complaint") or "other"), lat, lon, record.get("district")


# --- complaint surges -----------------------------------------------------------------------------


def parse_groups(specs: Iterable[str]) -> dict[str, frozenset[str]]:
    """``("respiratory", "cardio=cardiac+stroke")`` -> ``{"respiratory": {...}, "cardio": {...}}``."""
    out: dict[str, frozenset[str]] = {}
    for spec in specs:
        name, _, members = str(spec).partition("=")
        name = name.strip()
        complaints = frozenset(m.strip() for m in members.split("+") if m.strip()) if members else frozenset({name})
        if not name or not complaints:
            raise ValueError(f"complaint group {spec!r}: expected 'name' or 'name=complaint+complaint'")
        out[name] = complaints
    return out


class ComplaintSurge(Detector):
    """A city-wide rise of one complaint's share of ambulance calls (respiratory calls in a smog).

    Test: calls are binned (``bin_min``); in each window (``windows_min``, ending now) the
    group's count ``x`` of all ``n`` calls is compared with its share ``p0`` over the
    ``baseline_h`` hours before the window (bins inside an earlier episode of the group left
    out): ``P(X >= x)`` for ``X ~ Binomial(n, p0)``. WARNING when below ``p_value_max`` with at
    least ``min_count`` calls, ``x / n >= min_ratio * p0`` and a baseline of at least
    ``min_baseline_calls``. The share normalises away the daily volume cycle; a baseline of a
    few hours suffices. Signal ``ambulance.<group>_calls`` (``ambulance.respiratory_calls``).
    """

    name = "complaint_surge"
    feeds = frozenset({"ambulance"})

    @dataclass(frozen=True)
    class Params:
        """Parameters of :class:`ComplaintSurge` (defaults calibrated on the simulator)."""

        groups: tuple[str, ...] = ("respiratory",)
        """Complaint groups: ``name`` (one complaint) or ``name=complaint+complaint``."""
        windows_min: tuple[float, ...] = (30.0, 60.0, 120.0)
        """Test windows, minutes (before now)."""
        baseline_h: float = 24.0
        """Baseline: this many hours before the window."""
        bin_min: float = 5.0
        """Counting bins, minutes."""
        p_value_max: float = 1e-4
        """Significance threshold: the windows tile a day in about 84 disjoint tests per group, so
        about 0.01 false alarms a day per group (if calls are Poisson; ``min_ratio`` guards the rest)."""
        min_ratio: float = 1.3
        """The window's share must be at least this times the baseline share."""
        min_count: int = 10
        """Minimum calls of the group in the window."""
        min_baseline_calls: int = 300
        """Minimum calls in the baseline before testing."""
        eval_every_s: float = 60.0
        """Evaluate at most this often (seconds)."""
        clear_after_min: float = 60.0
        """An episode closes after this long without a significant window."""
        update_every_min: float = 30.0
        """Fresh evidence of an active episode at most this often."""
        max_exclude_h: float = 12.0
        """An episode's bins stay out of the baseline for at most this long from its onset."""

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        super().__init__(params, ctx)
        p = params
        self.groups = parse_groups(p.groups)
        self._of: dict[str, list[int]] = {}
        for gi, members in enumerate(self.groups.values()):
            for complaint in members:
                self._of.setdefault(complaint, []).append(gi)
        self.bin_s = 60.0 * p.bin_min
        self.windows_s = tuple(60.0 * w for w in p.windows_min)
        self.keep_bins = int(math.ceil((max(self.windows_s) + p.baseline_h * 3600.0) / self.bin_s)) + 2
        self._bins: dict[int, list[int]] = {}  # bin -> [total, count of group 0, group 1 ...]
        self._seen: dict[str, float] = {}
        self._seen_order: deque[tuple[float, str]] = deque()
        self._excluded: list[list[tuple[float, float]]] = [[] for _ in self.groups]
        self.episodes = {g: Episodes(self.name, f"ambulance.{g}_calls",
                                     clear_after=timedelta(minutes=p.clear_after_min),
                                     update_every=timedelta(minutes=p.update_every_min)) for g in self.groups}
        self._baseline_cache: dict[tuple[int, float], tuple[tuple[Any, ...], tuple[int, int]]] = {}
        self._last_eval = -math.inf
        self._dirty = False

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        seen, bins, ng, of = self._seen, self._bins, len(self.groups), self._of
        now_s = now.timestamp()
        for record in records:
            if record.get("kind") != "calls":
                continue
            times = record.get("times")
            when = times.get("call_received") if isinstance(times, Mapping) else None
            call_id = record.get("call_id")
            if not when or call_id is None or call_id in seen:
                continue
            try:
                t = parse_time(when).timestamp()
            except (TypeError, ValueError):
                continue
            seen[call_id] = t
            self._seen_order.append((now_s, call_id))
            b = int(t // self.bin_s)
            row = bins.get(b)
            if row is None:
                row = bins[b] = [0] * (ng + 1)
            row[0] += 1
            for gi in of.get(str(record.get("complaint")), ()):
                row[gi + 1] += 1
            self._dirty = True
        return self._evaluate(now)

    def tick(self, now: datetime) -> list[Event]:
        return self._evaluate(now)

    def _evaluate(self, now: datetime) -> list[Event]:
        now_s = now.timestamp()
        if now_s - self._last_eval < self.params.eval_every_s:
            return []
        self._last_eval = now_s
        self._forget(now_s)
        out = []
        for gi, group in enumerate(self.groups):
            event = self._test(gi, group, now, now_s)
            if event is not None:
                out.append(event)
        return out

    def _forget(self, now_s: float) -> None:
        cur = int(now_s // self.bin_s)
        for b in [b for b in self._bins if b < cur - self.keep_bins]:
            del self._bins[b]
        limit = now_s - self.keep_bins * self.bin_s
        order, seen = self._seen_order, self._seen
        while order and order[0][0] < limit:
            seen.pop(order.popleft()[1], None)
        for spans in self._excluded:
            spans[:] = [s for s in spans if s[1] >= limit]

    def _counts(self, gi: int, lo: float, hi: float, exclude: bool) -> tuple[int, int]:
        """(all calls, group calls) in bins starting in ``[lo, hi)``."""
        n = x = 0
        spans = self._excluded[gi] if exclude else ()
        bin_s = self.bin_s
        for b in range(int(math.ceil(lo / bin_s)), int(math.ceil(hi / bin_s))):
            row = self._bins.get(b)
            if row is None:
                continue
            t = b * bin_s
            if any(a <= t < z for a, z in spans):
                continue
            n += row[0]
            x += row[gi + 1]
        return n, x

    def _baseline(self, gi: int, w: float, lo: float) -> tuple[int, int]:
        """Baseline counts before a window starting at ``lo``; recounted only when the window moves
        by a bin or the excluded spans change (calls are rarely late by a whole window)."""
        stamp = (lo, tuple(self._excluded[gi]))
        cached = self._baseline_cache.get((gi, w))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        counts = self._counts(gi, lo - self.params.baseline_h * 3600.0, lo, exclude=True)
        self._baseline_cache[(gi, w)] = (stamp, counts)
        return counts

    def _test(self, gi: int, group: str, now: datetime, now_s: float) -> Event | None:
        p = self.params
        episodes = self.episodes[group]
        active = episodes.active.get(group)
        if active is not None:  # keep the episode's bins out of later baselines
            start = active.onset.timestamp()
            end = min(now_s + self.bin_s, start + p.max_exclude_h * 3600.0)
            spans = self._excluded[gi]
            if spans and spans[-1][0] == start:
                spans[-1] = (start, max(spans[-1][1], end))
            else:
                spans.append((start, end))
        cur_end = (math.floor(now_s / self.bin_s) + 1) * self.bin_s  # the current (partial) bin included
        best: tuple[float, dict[str, Any], float] | None = None
        for w in self.windows_s:
            lo = cur_end - w
            n, x = self._counts(gi, lo, cur_end, exclude=False)
            nb, xb = self._baseline(gi, w, lo)
            if nb < p.min_baseline_calls or n == 0:
                continue
            p0 = (xb + 0.5) / (nb + 1.0)
            share = x / n
            pv = binom_sf(x, n, p0)
            ok = pv <= p.p_value_max and x >= p.min_count and share >= p.min_ratio * p0
            z = (x - n * p0) / math.sqrt(n * p0 * (1 - p0)) if 0 < p0 < 1 else 0.0
            evidence = {"group": group, "complaints": sorted(self.groups[group]), "count": x, "calls": n,
                        "share": round(share, 4), "baseline_share": round(p0, 4),
                        "ratio": round(share / p0, 3) if p0 > 0 else None, "expected": round(n * p0, 2),
                        "p_value": pv, "p_threshold": p.p_value_max, "z": round(z, 2),
                        "baseline_count": xb, "baseline_calls": nb, "window_min": w / 60.0,
                        "window_start": _iso_t(lo), "window_end": _iso_t(now_s), "baseline_h": p.baseline_h}
            if ok and (best is None or pv < best[0]):
                best = (pv, evidence, lo)
        if best is None:
            return episodes.report(group, False, now)
        return episodes.report(group, True, now, onset=datetime.fromtimestamp(best[2], UTC), severity=WARNING,
                               evidence=best[1])
