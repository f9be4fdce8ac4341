"""Feature views the pipelines write, declared in code (Feast style: no I/O here).

One features view and one labels view per dataset; the schemas come from the transform modules, so a
transform and its view cannot drift apart.
"""

from __future__ import annotations

from feature_store import FeatureView, Field, entities
from pipelines.transforms import injection, machining, semiconductor, steel, turbofan

OWNER = "pipelines"


def _fields(spec: dict[str, str]) -> list[Field]:
    return [Field(name=n, dtype=d) for n, d in spec.items()]


cmapss_features = FeatureView(
    name="cmapss_features",
    entity=entities.unit,
    schema=_fields(turbofan.FEATURES),
    source="C-MAPSS train_FD00x.txt via pipelines.adapters.cmapss",
    description="turbofan cycles: raw and regime-normalised sensors, rolling stats (5, 20 cycles), lags",
    owner=OWNER,
    tags={"module": "maintenance", "ksic": "C31", "dataset": "cmapss"},
)
cmapss_labels = FeatureView(
    name="cmapss_labels",
    entity=entities.unit,
    schema=_fields(turbofan.LABELS),
    source="C-MAPSS train_FD00x.txt via pipelines.adapters.cmapss",
    description="remaining useful life (cycles) per unit and cycle; failed at the last cycle",
    owner=OWNER,
    tags={"module": "maintenance", "ksic": "C31", "dataset": "cmapss", "kind": "labels"},
)
ai4i_features = FeatureView(
    name="ai4i_features",
    entity=entities.lot,
    schema=_fields(machining.FEATURES),
    source="AI4I 2020 CSV via pipelines.adapters.ai4i",
    description="milling runs: process readings plus temperature rise, mechanical power, wear x torque",
    owner=OWNER,
    tags={"module": "maintenance", "ksic": "C29", "dataset": "ai4i"},
)
ai4i_labels = FeatureView(
    name="ai4i_labels",
    entity=entities.lot,
    schema=_fields(machining.LABELS),
    source="AI4I 2020 CSV via pipelines.adapters.ai4i",
    description="machine failure and the five failure-mode flags",
    owner=OWNER,
    tags={"module": "maintenance", "ksic": "C29", "dataset": "ai4i", "kind": "labels"},
)
secom_features = FeatureView(
    name="secom_features",
    entity=entities.lot,
    schema=_fields(semiconductor.FEATURES),
    source="SECOM CSV via pipelines.adapters.secom",
    description="590 anonymised wafer process measurements (NaN kept) and the count missing per lot",
    owner=OWNER,
    tags={"module": "quality", "ksic": "C26", "dataset": "secom"},
)
secom_labels = FeatureView(
    name="secom_labels",
    entity=entities.lot,
    schema=_fields(semiconductor.LABELS),
    source="SECOM CSV via pipelines.adapters.secom",
    description="pass (-1) / fail (1) per lot; defect = fail",
    owner=OWNER,
    tags={"module": "quality", "ksic": "C26", "dataset": "secom", "kind": "labels"},
)
steel_energy_features = FeatureView(
    name="steel_energy_features",
    entity=entities.meter,
    schema=_fields(steel.FEATURES),
    source="DAEWOO steel CSV via pipelines.adapters.steel_energy",
    description="15-minute meter readings (interval end), usage lags and rolling stats, KST calendar + holidays",
    owner=OWNER,
    tags={"module": "energy", "ksic": "C24", "dataset": "steel-energy"},
)
c22_cycle_features = FeatureView(
    name="c22_cycle_features",
    entity=entities.machine,
    schema=_fields(injection.FEATURES),
    source="pipelines.demo (synthetic injection moulding)",
    description="moulding cycles: process signals, rolling stats (10, 120 shots), lags, calendar",
    owner=OWNER,
    tags={"module": "quality", "ksic": "C22", "dataset": "c22-demo"},
)
c22_defect_labels = FeatureView(
    name="c22_defect_labels",
    entity=entities.machine,
    schema=_fields(injection.LABELS),
    source="pipelines.demo (synthetic injection moulding)",
    description="defect flag and type per shot",
    owner=OWNER,
    tags={"module": "quality", "ksic": "C22", "dataset": "c22-demo", "kind": "labels"},
)
c22_machine_energy = FeatureView(
    name="c22_machine_energy",
    entity=entities.machine,
    schema=_fields(injection.ENERGY),
    source="pipelines.demo (synthetic injection moulding)",
    description="kWh and shots per machine per 15 minutes (interval end)",
    owner=OWNER,
    tags={"module": "energy", "ksic": "C22", "dataset": "c22-demo"},
)

VIEWS: dict[str, FeatureView] = {
    v.name: v
    for v in (
        cmapss_features,
        cmapss_labels,
        ai4i_features,
        ai4i_labels,
        secom_features,
        secom_labels,
        steel_energy_features,
        c22_cycle_features,
        c22_defect_labels,
        c22_machine_energy,
    )
}
