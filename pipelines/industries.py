"""Industry profiles: for each of the 25 KSIC manufacturing divisions (C10-C34), which SFAI modules apply,
which canonical tables a tenant of that industry feeds, and which feature templates the pipelines start from.

    get_profile("C31").modules          -> ("maintenance", "scheduling", "quality")
    get_profile("24").public_dataset    -> "steel-energy"

A profile is a starting point, not a limit: a tenant may subscribe to any module. Four divisions are backed
by real public data today (C24, C26, C29, C31); C22 has a synthetic demo (``pipelines.demo``); the others
start from their profile and the tenant's own data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipelines.ksic import KSIC_DIVISIONS, normalize_ksic

MODULES = ("quality", "maintenance", "energy", "scheduling")

# Canonical tables (see pipelines/canonical.py): what raw data is mapped to before features are made.
SENSOR_READINGS = "sensor_readings"  # machine/asset/lot measurements at a time, with units
EVENTS = "events"  # failures, alarms, maintenance, lot completion
LABELS = "labels"  # outcomes a model learns: defect, failure, RUL
METER_READINGS = "meter_readings"  # energy per interval from a meter
PRODUCTION_ORDERS = "production_orders"  # jobs/operations for scheduling
CANONICAL_TABLES = (SENSOR_READINGS, EVENTS, LABELS, METER_READINGS, PRODUCTION_ORDERS)

# Feature templates (pipelines/transforms): named recipes a profile switches on.
FEATURE_TEMPLATES: dict[str, str] = {
    "rolling_stats": "per-entity rolling mean/std/min/max/slope over several windows",
    "lags": "per-entity lagged values",
    "regime_normalization": "cluster operating settings into regimes; z-score sensors per regime",
    "calendar_kr": "hour, weekday, weekend, Korean public holidays (Asia/Seoul)",
    "energy_lags": "meter lags (1 interval, 1 h, 1 day, 1 week) and rolling load statistics",
    "process_physics": "derived process quantities (mechanical power, temperature rise, wear x load)",
    "missing_report": "missing-value handling with a per-column report",
    "cycle_stats": "per-cycle process statistics for batch/cyclic machines (moulding, pressing)",
    "lot_summary": "per-lot aggregates of process measurements",
}


@dataclass(frozen=True, slots=True)
class IndustryProfile:
    code: str
    name_ko: str
    name_en: str
    modules: tuple[str, ...]  # the modules that usually pay off first, most relevant first
    tables: tuple[str, ...]  # canonical tables a tenant of this industry feeds
    feature_templates: tuple[str, ...]
    typical_assets: str  # what the entities usually are
    public_dataset: str | None = None  # a pipeline backed by real public data (sfai ingest <name>)
    demo: str | None = None  # a synthetic demo generator

    def as_dict(self) -> dict:
        return asdict(self)


# Archetypes: process (continuous, energy heavy), discrete (machines, parts), electronics (lots, many
# sensors), assembly (orders, scheduling first). Each division picks one and may add to it.
_PROCESS = dict(
    modules=("energy", "quality", "maintenance", "scheduling"),
    tables=(SENSOR_READINGS, METER_READINGS, LABELS, EVENTS, PRODUCTION_ORDERS),
    feature_templates=("energy_lags", "calendar_kr", "rolling_stats", "missing_report"),
)
_DISCRETE = dict(
    modules=("maintenance", "quality", "scheduling", "energy"),
    tables=(SENSOR_READINGS, EVENTS, LABELS, PRODUCTION_ORDERS, METER_READINGS),
    feature_templates=("rolling_stats", "lags", "process_physics", "calendar_kr", "missing_report"),
)
_LOTS = dict(
    modules=("quality", "scheduling", "maintenance", "energy"),
    tables=(SENSOR_READINGS, LABELS, EVENTS, PRODUCTION_ORDERS, METER_READINGS),
    feature_templates=("lot_summary", "missing_report", "rolling_stats", "calendar_kr"),
)
_ASSEMBLY = dict(
    modules=("scheduling", "quality", "maintenance", "energy"),
    tables=(PRODUCTION_ORDERS, SENSOR_READINGS, LABELS, EVENTS, METER_READINGS),
    feature_templates=("lot_summary", "rolling_stats", "calendar_kr", "missing_report"),
)

_SPECS: dict[str, dict] = {
    "C10": dict(_PROCESS, typical_assets="ovens, sterilisers, chillers, filling lines"),
    "C11": dict(_PROCESS, typical_assets="brewing and bottling lines, chillers"),
    "C12": dict(_LOTS, typical_assets="cigarette makers and packers"),
    "C13": dict(_DISCRETE, typical_assets="looms, spinning frames, dyeing machines"),
    "C14": dict(_ASSEMBLY, typical_assets="sewing lines, cutting tables"),
    "C15": dict(_ASSEMBLY, typical_assets="cutting presses, stitching and moulding lines"),
    "C16": dict(_DISCRETE, typical_assets="saws, planers, drying kilns"),
    "C17": dict(_PROCESS, typical_assets="paper machines, pulpers, dryers"),
    "C18": dict(_ASSEMBLY, typical_assets="printing presses, binders"),
    "C19": dict(_PROCESS, typical_assets="distillation units, furnaces, compressors"),
    "C20": dict(_PROCESS, typical_assets="reactors, columns, pumps, compressors"),
    "C21": dict(_LOTS, typical_assets="batch reactors, granulators, tablet presses"),
    "C22": dict(
        _DISCRETE,
        modules=("quality", "maintenance", "energy", "scheduling"),
        feature_templates=("cycle_stats", "rolling_stats", "lags", "calendar_kr", "missing_report"),
        typical_assets="injection moulding machines, extruders",
        demo="c22-injection-moulding",
    ),
    "C23": dict(_PROCESS, typical_assets="kilns, furnaces, mills"),
    "C24": dict(
        _PROCESS,
        typical_assets="electric arc furnaces, rolling mills, plant meters",
        public_dataset="steel-energy",
    ),
    "C25": dict(_DISCRETE, typical_assets="presses, CNC machining centres, welding robots"),
    "C26": dict(
        _LOTS,
        typical_assets="wafer process tools, SMT lines, test stations",
        public_dataset="secom",
    ),
    "C27": dict(_LOTS, typical_assets="precision machining, optical assembly, test benches"),
    "C28": dict(_DISCRETE, typical_assets="winding machines, presses, test benches"),
    "C29": dict(
        _DISCRETE,
        typical_assets="milling machines, lathes, machining centres",
        public_dataset="ai4i",
    ),
    "C30": dict(_ASSEMBLY, typical_assets="stamping presses, welding robots, paint shops, assembly lines"),
    "C31": dict(
        _DISCRETE,
        modules=("maintenance", "scheduling", "quality", "energy"),
        feature_templates=("regime_normalization", "rolling_stats", "lags", "missing_report"),
        typical_assets="engines, turbines, rolling stock, ships' machinery",
        public_dataset="cmapss",
    ),
    "C32": dict(_ASSEMBLY, typical_assets="panel saws, edge banders, CNC routers"),
    "C33": dict(_ASSEMBLY, typical_assets="mixed small-batch lines"),
    "C34": dict(
        _DISCRETE,
        modules=("maintenance", "scheduling", "quality", "energy"),
        typical_assets="customers' machines under service contracts",
    ),
}


def _build() -> dict[str, IndustryProfile]:
    out = {}
    for code, div in KSIC_DIVISIONS.items():
        spec = _SPECS[code]
        out[code] = IndustryProfile(
            code=code,
            name_ko=div.name_ko,
            name_en=div.name_en,
            modules=tuple(spec["modules"]),
            tables=tuple(spec["tables"]),
            feature_templates=tuple(spec["feature_templates"]),
            typical_assets=spec["typical_assets"],
            public_dataset=spec.get("public_dataset"),
            demo=spec.get("demo"),
        )
    return out


PROFILES: dict[str, IndustryProfile] = _build()


def list_profiles() -> list[IndustryProfile]:
    """All 25 profiles, C10 to C34."""
    return list(PROFILES.values())


def get_profile(code: str) -> IndustryProfile:
    """The profile of a division (``C29``, ``c29`` or ``29``); ValueError naming C10-C34 if unknown."""
    return PROFILES[normalize_ksic(code)]
