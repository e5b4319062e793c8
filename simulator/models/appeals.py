"""Appeals model: citizens' requests to Almaty's city service (109), opened, assigned and closed.

About 21,000 appeals a month, 700 a day on average: more on weekdays, fewest on Sunday, busiest
09–13 and 14–18 local time, few at night. Categories are the pack's appeal deadline categories
(``pack.norms.appeal_deadline_h``) with a seasonal mix (winter: heating, roads with ice and
snow; summer: water, waste, noise). Channels: phone about 45 %, social media 25 %, messengers
10 %, the mobile app 10 %, the web 7 %, walk-in 3 %. A request lands in a district by population,
at a point near where people live, with a short description in Russian or Kazakh (templates,
no personal data).

Each request is published when made (status ``open``), then as it changes: ``assigned`` within
minutes to hours, sometimes ``in_progress``, ``closed`` after a time drawn per category
(median hours to two days; about 10–15 % after the deadline), and a few are ``reopened`` and
closed again. Ids are stable: ``ALA-<yyyymmdd>-<n>`` by local day of the request.

Emissions: ``open311`` (GeoReport v2 JSON array; extensions ``district``, ``category`` and
``channel`` in ``extended_attributes``), one payload per tick in which something happened.

Effects: ``appeal_burst`` (``rate_per_hour`` x intensity extra requests of ``category`` within
``radius_m`` of the effect's place, mostly by phone and messengers).
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

from simulator.common import CityPoints, local_iso, poisson, weighted_choice, winterness
from simulator.effects import Effect
from simulator.engine import Emission, SimContext

FEED = "appeals"

# --- volume -------------------------------------------------------------------------------------

#: Appeals on an average day (about 21,000 a month).
DAILY_APPEALS = 700.0
#: Volume factor by local weekday, Monday first (mean 1 over the week).
WEEKDAY_FACTOR = (1.05, 1.05, 1.05, 1.05, 1.05, 0.90, 0.80)
_WEEK_MEAN = sum(WEEKDAY_FACTOR) / 7
#: Relative volume by local hour: busiest 09–13 and 14–18, a lunch dip, few at night.
HOUR_SHAPE = (0.6, 0.4, 0.3, 0.25, 0.25, 0.35, 0.8, 1.8, 3.6, 6.4, 7.4, 7.4,
              7.0, 5.0, 6.9, 7.1, 6.9, 6.2, 4.5, 3.3, 2.6, 2.0, 1.4, 1.0)
_HOUR_MEAN = sum(HOUR_SHAPE) / 24

# --- what, how, how long ------------------------------------------------------------------------

#: Category weights in summer and in winter; a month mixes them by its winterness.
CATEGORY_WEIGHTS: Mapping[str, tuple[float, float]] = {
    "water_supply": (15, 9), "heating": (3, 20), "electricity": (9, 10), "roads": (13, 22),
    "waste": (15, 8), "lighting": (7, 9), "public_transport": (11, 8), "noise": (9, 3), "other": (18, 11),
}
#: Channels: (spelling sent, share); spellings are what the adapter maps (``109`` -> phone ...).
CHANNELS: Mapping[str, float] = {
    "109": 0.45, "instagram": 0.17, "facebook": 0.08, "telegram": 0.06, "whatsapp": 0.04, "mobile_app": 0.10,
    "web": 0.07, "walk_in": 0.03,
}
#: Channels of a burst: people with no water or a blocked road call and write in messengers.
BURST_CHANNELS: Mapping[str, float] = {
    "109": 0.55, "telegram": 0.15, "whatsapp": 0.10, "instagram": 0.08, "mobile_app": 0.07, "web": 0.05,
}
#: Median hours to close and the share closed after the deadline, by category.
CLOSE_MEDIAN_H: Mapping[str, float] = {
    "water_supply": 6, "heating": 8, "electricity": 5, "roads": 44, "waste": 16, "lighting": 30,
    "public_transport": 36, "noise": 20, "other": 48,
}
OVERDUE_SHARE: Mapping[str, float] = {
    "water_supply": 0.11, "heating": 0.13, "electricity": 0.10, "roads": 0.13, "waste": 0.12, "lighting": 0.11,
    "public_transport": 0.10, "noise": 0.10, "other": 0.10,
}
#: Categories handled around the clock (others are assigned in office hours).
ROUND_THE_CLOCK = frozenset({"water_supply", "heating", "electricity"})
ASSIGN_MEDIAN_S = 25 * 60.0
P_IN_PROGRESS = 0.5
P_REOPEN = 0.04
KAZAKH_SHARE = 0.3
DEFAULT_DEADLINES = {"other": 360.0}


@dataclass(frozen=True, slots=True)
class Template:
    """One kind of request: service code and name, a Russian and a Kazakh text, the season it occurs in."""

    code: str
    name: str
    ru: str
    kk: str
    season: str = "any"
    """``any``, ``cold`` (November–March) or ``warm``."""


TEMPLATES: Mapping[str, tuple[Template, ...]] = {
    "water_supply": (
        Template("WS-01", "Нет холодной воды", "Нет холодной воды во всём доме с утра.",
                 "Таңертеңнен бері үйде суық су жоқ."),
        Template("WS-02", "Слабый напор воды", "Очень слабый напор, на верхние этажи вода не доходит.",
                 "Су қысымы өте әлсіз, жоғарғы қабаттарға су жетпейді."),
        Template("WS-03", "Порыв водопровода", "Прорвало трубу во дворе, вода течёт по улице.",
                 "Ауладағы құбыр жарылып, су көшеге ағып жатыр."),
        Template("WS-04", "Качество воды", "Из крана идёт ржавая вода.", "Краннан тот басқан су ағып тұр."),
    ),
    "heating": (
        Template("HT-01", "Холодные батареи", "Батареи холодные, в квартире +15.",
                 "Батареялар суық, пәтерде +15 градус.", "cold"),
        Template("HT-02", "Нет отопления", "Нет отопления во всём подъезде.", "Бүкіл подъезде жылу жоқ.", "cold"),
        Template("HT-03", "Течь теплосети", "В подвале течёт труба отопления, идёт пар.",
                 "Жертөледегі жылу құбыры ағып тұр, бу шығып жатыр.", "cold"),
        Template("HT-04", "Нет горячей воды", "Второй день нет горячей воды.", "Екінші күн ыстық су жоқ."),
    ),
    "electricity": (
        Template("EL-01", "Нет электричества", "Нет света в доме уже два часа.",
                 "Үйде екі сағаттан бері жарық жоқ."),
        Template("EL-02", "Скачки напряжения", "Постоянные скачки напряжения, сгорела техника.",
                 "Кернеу үнемі ауытқиды, тұрмыстық техника күйіп кетті."),
        Template("EL-03", "Обрыв провода", "Оборван провод на опоре возле дома.",
                 "Үйдің жанындағы бағанада сым үзіліп тұр."),
    ),
    "roads": (
        Template("RD-01", "Гололёд", "Сильный гололёд на тротуаре, люди падают.",
                 "Тротуарда қатты көктайғақ, адамдар құлап жатыр.", "cold"),
        Template("RD-02", "Уборка снега", "Улица не очищена от снега, машины буксуют.",
                 "Көше қардан тазартылмаған, көліктер тайғанап жатыр.", "cold"),
        Template("RD-03", "Уборка снега во дворе", "Во дворе не убран снег, невозможно выехать.",
                 "Аулада қар тазаланбаған, шығу мүмкін емес.", "cold"),
        Template("RD-04", "Яма на дороге", "Глубокая яма на проезжей части.",
                 "Жолдың жүріс бөлігінде терең шұңқыр бар.", "warm"),
        Template("RD-05", "Ремонт покрытия", "После ремонтных работ не восстановили асфальт.",
                 "Жөндеуден кейін асфальт қалпына келтірілмеді.", "warm"),
        Template("RD-06", "Затор, ДТП", "Затор на дороге, движение почти стоит.",
                 "Жолда кептеліс, қозғалыс тоқтап тұр."),
        Template("RD-07", "Светофор", "Не работает светофор на перекрёстке.", "Қиылыстағы бағдаршам істемейді."),
    ),
    "waste": (
        Template("WT-01", "Не вывезен мусор", "Мусор не вывозят третий день, контейнеры переполнены.",
                 "Қоқыс үш күннен бері шығарылмай жатыр, контейнерлер толып кеткен."),
        Template("WT-02", "Стихийная свалка", "Во дворе свалка строительного мусора.",
                 "Аулада құрылыс қоқысының үйіндісі пайда болды."),
        Template("WT-03", "График вывоза", "Мусоровоз не приехал по графику.",
                 "Қоқыс таситын көлік кесте бойынша келмеді."),
    ),
    "lighting": (
        Template("LT-01", "Не горят фонари", "Не горят фонари на всей улице.", "Бүкіл көшеде шамдар жанбайды."),
        Template("LT-02", "Нет освещения во дворе", "Во дворе нет освещения, очень темно.",
                 "Аулада жарық жоқ, өте қараңғы."),
        Template("LT-03", "Фонарь горит днём", "Фонарь горит и днём, и ночью.",
                 "Көше шамы күндіз де, түнде де жанып тұр."),
    ),
    "public_transport": (
        Template("PT-01", "Интервал движения", "Автобус не приходил больше 40 минут.",
                 "Автобус 40 минуттан астам келмеді."),
        Template("PT-02", "Проезд остановки", "Водитель автобуса проехал остановку, не остановившись.",
                 "Автобус жүргізушісі аялдамаға тоқтамай өтіп кетті."),
        Template("PT-03", "Валидатор", "В автобусе не работает валидатор.", "Автобустағы валидатор істемейді."),
    ),
    "noise": (
        Template("NS-01", "Строительство ночью", "Шумные строительные работы ночью.",
                 "Түнде шулы құрылыс жұмыстары жүріп жатыр."),
        Template("NS-02", "Музыка после 23:00", "Громкая музыка из кафе после 23:00.",
                 "Кафеден сағат 23:00-ден кейін қатты музыка естіледі."),
        Template("NS-03", "Шум от соседей", "Соседи шумят по ночам.", "Көршілер түнде шулатады."),
    ),
    "other": (
        Template("OT-01", "Бродячие собаки", "Во дворе бродячие собаки, дети боятся.",
                 "Аулада қаңғыбас иттер жүр, балалар қорқады."),
        Template("OT-02", "Благоустройство", "Просим установить детскую площадку во дворе.",
                 "Аулаға балалар алаңын орнатуды сұраймыз."),
        Template("OT-03", "Сломана скамейка", "В сквере сломана скамейка.", "Саябақтағы орындық сынған."),
        Template("OT-04", "Лифт", "Не работает лифт в доме.", "Үйдегі лифт істемейді."),
    ),
}
GENERIC = Template("GN-01", "Обращение", "Прошу принять меры.", "Шара қолдануды сұраймын.")

AGENCIES: Mapping[str, str] = {
    "water_supply": "Водоканал", "heating": "Тепловые сети", "electricity": "Электросети",
    "roads": "Дорожная служба", "waste": "Служба санитарной очистки", "lighting": "Служба наружного освещения",
    "public_transport": "Управление пассажирского транспорта", "noise": "Акимат района",
    "other": "Акимат района",
}
CLOSE_NOTES: Mapping[str, str] = {
    "water_supply": "Водоснабжение восстановлено.", "heating": "Теплоснабжение восстановлено.",
    "electricity": "Электроснабжение восстановлено.", "roads": "Работы выполнены.",
    "waste": "Мусор вывезен.", "lighting": "Освещение восстановлено.",
    "public_transport": "Перевозчику вынесено предупреждение.", "noise": "Проведена профилактическая беседа.",
    "other": "Обращение рассмотрено, даны разъяснения.",
}


def season(month: int) -> str:
    """``cold`` from November to March, else ``warm``."""
    return "cold" if winterness(month) >= 0.5 else "warm"


def appeal_rate_per_s(local: datetime) -> float:
    """Baseline appeals per second at a local time."""
    x = local.hour + local.minute / 60 + local.second / 3600 - 0.5
    i = math.floor(x)
    f = x - i
    shape = (HOUR_SHAPE[i % 24] * (1 - f) + HOUR_SHAPE[(i + 1) % 24] * f) / _HOUR_MEAN
    return DAILY_APPEALS * WEEKDAY_FACTOR[local.weekday()] / _WEEK_MEAN * shape / 86_400


def category_weights(categories: Sequence[str], month: int) -> dict[str, float]:
    """Weights of the pack's categories in a month (unknown categories weigh like ``other``)."""
    w = winterness(month)
    default = CATEGORY_WEIGHTS["other"]
    out = {}
    for category in categories:
        summer, winter = CATEGORY_WEIGHTS.get(category, default)
        out[category] = summer * (1 - w) + winter * w
    return out


def close_sigma(median_h: float, deadline_h: float, overdue: float) -> float:
    """Log-normal sigma putting ``overdue`` of close times beyond ``deadline_h`` with median ``median_h``."""
    z = NormalDist().inv_cdf(1 - overdue)
    return max(0.2, math.log(max(deadline_h, median_h * 1.01) / median_h) / z)


@dataclass(slots=True)
class _Spec:
    """A request about to be made: when, what, where, how, and the generator of its own draws."""

    t: float
    category: str
    template: Template
    lang: str
    channel: str
    lat: float
    lon: float
    district: Any
    rng: random.Random


class AppealsModel:
    """Citizens' appeals of the city; see the module docstring.

    Args:
        ctx: the run's context (pack, seed, start, effects).
    """

    feed = FEED

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.pack = ctx.pack
        self.zone = ctx.pack.zone
        self.rng = ctx.rng(FEED)
        self.points = CityPoints(ctx.pack)
        norms = ctx.pack.norms
        self.deadlines: dict[str, float] = dict(norms.appeal_deadline_h) if norms else dict(DEFAULT_DEADLINES)
        self.categories = tuple(self.deadlines)
        self._updates: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = 0
        self._day_counts: dict[str, int] = {}
        self._effect_rngs: dict[tuple[str, datetime], random.Random] = {}

    # -- stepping -------------------------------------------------------------------------------

    def step(self, now: datetime, dt: timedelta) -> list[Emission]:
        """Advance from ``now - dt`` to ``now``; return the requests made or changed in that interval."""
        t1 = now.timestamp()
        t0 = t1 - dt.total_seconds()
        local = now.astimezone(self.zone)
        specs = self._baseline(local, t0, t1)
        for effect in self.ctx.effects.active("appeal_burst", now):
            specs.extend(self._burst(effect, now, local, t0, t1))
        specs.sort(key=lambda s: s.t)
        versions = [(spec.t, self._open(spec)) for spec in specs]
        while self._updates and self._updates[0][0] <= t1:
            t, _, version = heapq.heappop(self._updates)
            versions.append((t, version))
        if not versions:
            return []
        versions.sort(key=lambda v: v[0])
        payload = json.dumps([v for _, v in versions], ensure_ascii=False, separators=(",", ":"))
        return [Emission(now, FEED, "open311", payload.encode())]

    # -- what comes in --------------------------------------------------------------------------

    def _baseline(self, local: datetime, t0: float, t1: float) -> list[_Spec]:
        rng = self.rng
        out = []
        for _ in range(poisson(rng, appeal_rate_per_s(local) * (t1 - t0))):
            category = weighted_choice(rng, category_weights(self.categories, local.month))
            district, lat, lon = self.points.anywhere(rng)
            out.append(self._spec(rng, t1 - rng.random() * (t1 - t0), category, local.month, CHANNELS,
                                  lat, lon, district))
        return out

    def _burst(self, effect: Effect, now: datetime, local: datetime, t0: float, t1: float) -> list[_Spec]:
        """Extra requests of the burst's category near its place (else in its district, else anywhere)."""
        rng = self._effect_rng(effect)
        rate = float(effect.param("rate_per_hour", 0.0)) * effect.intensity(now) / 3600
        category = str(effect.param("category", "other"))
        out = []
        for _ in range(poisson(rng, rate * (t1 - t0))):
            district, lat, lon = self.points.for_effect(effect, rng)
            out.append(self._spec(rng, t1 - rng.random() * (t1 - t0), category, local.month, BURST_CHANNELS,
                                  lat, lon, district))
        return out

    def _effect_rng(self, effect: Effect) -> random.Random:
        key = (effect.incident_id, effect.start)
        rng = self._effect_rngs.get(key)
        if rng is None:
            rng = self._effect_rngs[key] = self.ctx.rng(f"{FEED}:{effect.incident_id}:{effect.kind}:"
                                                         f"{effect.start.isoformat()}")
        return rng

    def _spec(self, rng: random.Random, t: float, category: str, month: int, channels: Mapping[str, float],
              lat: float, lon: float, district: Any) -> _Spec:
        now_season = season(month)
        pool = [tp for tp in TEMPLATES.get(category, (GENERIC,)) if tp.season in ("any", now_season)]
        template = rng.choice(pool or [GENERIC])
        lang = "kk" if rng.random() < KAZAKH_SHARE else "ru"
        return _Spec(t, category, template, lang, weighted_choice(rng, channels), lat, lon, district, rng)

    # -- a request's life -----------------------------------------------------------------------

    def _open(self, spec: _Spec) -> dict[str, Any]:
        """Give the request its id, schedule its later versions, return its first version."""
        day = datetime.fromtimestamp(spec.t, self.zone).strftime("%Y%m%d")
        n = self._day_counts[day] = self._day_counts.get(day, 0) + 1
        request_id = f"ALA-{day}-{n:05d}"
        requested = local_iso(spec.t, self.zone)
        deadline = self.deadlines.get(spec.category, self.deadlines.get("other", 360.0))
        district_id = spec.district.id if spec.district is not None else None
        extensions: dict[str, Any] = {"category": spec.category, "channel": spec.channel}
        address = "Алматы"
        if district_id is not None:
            extensions["district"] = district_id
            address = f"{spec.district.names.ru}, Алматы"
        first = {
            "service_request_id": request_id, "status": "open", "service_code": spec.template.code,
            "service_name": spec.template.name, "description": getattr(spec.template, spec.lang),
            "agency_responsible": AGENCIES.get(spec.category, AGENCIES["other"]),
            "requested_datetime": requested, "updated_datetime": requested,
            "expected_datetime": local_iso(spec.t + deadline * 3600, self.zone),
            "address": address, "lat": round(spec.lat, 6), "long": round(spec.lon, 6),
            "extended_attributes": extensions,
        }
        for t, status, note in self._life(spec, deadline):
            self._schedule(t, request_id, requested, status, note)
        return first

    def _life(self, spec: _Spec, deadline_h: float) -> list[tuple[float, str, str | None]]:
        """The request's later states: ``(time, status, note)`` — assigned, maybe in progress, closed, reopened."""
        rng, category = spec.rng, spec.category
        median = CLOSE_MEDIAN_H.get(category, deadline_h / 4)
        sigma = close_sigma(median, deadline_h, OVERDUE_SHARE.get(category, 0.12))
        close = spec.t + max(600.0, rng.lognormvariate(math.log(median * 3600), sigma))
        assign = self._assign_time(spec, rng)
        assign = min(assign, spec.t + 0.5 * (close - spec.t))
        life: list[tuple[float, str, str | None]] = [(assign, "assigned", None)]
        if category not in ROUND_THE_CLOCK and rng.random() < P_IN_PROGRESS:
            life.append((assign + rng.uniform(0.2, 0.6) * (close - assign), "in_progress", None))
        note = CLOSE_NOTES.get(category, CLOSE_NOTES["other"])
        life.append((close, "closed", note))
        if rng.random() < P_REOPEN:
            reopen = close + rng.uniform(2, 36) * 3600
            life.append((reopen, "reopened", "Заявитель сообщил, что проблема не устранена."))
            life.append((reopen + rng.lognormvariate(math.log(4 * 3600), 0.8), "closed", note))
        return life

    def _assign_time(self, spec: _Spec, rng: random.Random) -> float:
        """When an operator assigns the request: minutes later, or the next morning outside office hours."""
        t = spec.t + rng.lognormvariate(math.log(ASSIGN_MEDIAN_S), 0.9)
        if spec.category in ROUND_THE_CLOCK:
            return t
        local = datetime.fromtimestamp(t, self.zone)
        if 8 <= local.hour < 20:
            return t
        morning = local.replace(hour=8, minute=0, second=0, microsecond=0)
        if local.hour >= 20:
            morning += timedelta(days=1)
        return morning.timestamp() + rng.uniform(0, 90 * 60)

    def _schedule(self, t: float, request_id: str, requested: str, status: str, note: str | None) -> None:
        version: dict[str, Any] = {"service_request_id": request_id, "status": status,
                                   "requested_datetime": requested, "updated_datetime": local_iso(t, self.zone)}
        if note:
            version["status_notes"] = note
        self._seq += 1
        heapq.heappush(self._updates, (t, self._seq, version))
