"""Feature views the pipelines write, declared in code (Feast style: no I/O here).

One features view and one labels view per dataset; the schemas come from the transform modules, so a
transform and its view cannot drift apart.
"""

from __future__ import annotations

from feature_store import FeatureView, Field, entities
from feature_store.entities import Entity
from pipelines.transforms import injection, machining, semiconductor, steel, turbofan

OWNER = "pipelines"


def _fields(spec: dict[str, str]) -> list[Field]:
    return [Field(name=n, dtype=d) for n, d in spec.items()]


def _view(name: str, entity: Entity, spec: dict[str, str], source: str, description: str, *, module: str,
          ksic: str, dataset: str, labels: bool = False) -> FeatureView:
    tags = {"module": module, "ksic": ksic, "dataset": dataset, **({"kind": "labels"} if labels else {})}
    return FeatureView(name=name, entity=entity, schema=_fields(spec), source=source, description=description,
                       owner=OWNER, tags=tags)


_CMAPSS = dict(module="maintenance", ksic="C31", dataset="cmapss")
_AI4I = dict(module="maintenance", ksic="C29", dataset="ai4i")
_SECOM = dict(module="quality", ksic="C26", dataset="secom")
_C22 = dict(ksic="C22", dataset="c22-demo")
_C22_SOURCE = "pipelines.demo (synthetic injection moulding)"

cmapss_features = _view(
    "cmapss_features", entities.unit, turbofan.FEATURES, "C-MAPSS train_FD00x.txt via pipelines.adapters.cmapss",
    "turbofan cycles: raw and regime-normalised sensors, rolling stats (5, 20 cycles), lags", **_CMAPSS)
cmapss_labels = _view(
    "cmapss_labels", entities.unit, turbofan.LABELS, "C-MAPSS train_FD00x.txt via pipelines.adapters.cmapss",
    "remaining useful life (cycles) per unit and cycle; failed at the last cycle", **_CMAPSS, labels=True)
ai4i_features = _view(
    "ai4i_features", entities.lot, machining.FEATURES, "AI4I 2020 CSV via pipelines.adapters.ai4i",
    "milling runs: process readings plus temperature rise, mechanical power, wear x torque", **_AI4I)
ai4i_labels = _view(
    "ai4i_labels", entities.lot, machining.LABELS, "AI4I 2020 CSV via pipelines.adapters.ai4i",
    "machine failure and the five failure-mode flags", **_AI4I, labels=True)
secom_features = _view(
    "secom_features", entities.lot, semiconductor.FEATURES, "SECOM CSV via pipelines.adapters.secom",
    "590 anonymised wafer process measurements (NaN kept) and the count missing per lot", **_SECOM)
secom_labels = _view(
    "secom_labels", entities.lot, semiconductor.LABELS, "SECOM CSV via pipelines.adapters.secom",
    "pass (-1) / fail (1) per lot; defect = fail", **_SECOM, labels=True)
steel_energy_features = _view(
    "steel_energy_features", entities.meter, steel.FEATURES, "DAEWOO steel CSV via pipelines.adapters.steel_energy",
    "15-minute meter readings (interval end), usage lags and rolling stats, KST calendar + holidays",
    module="energy", ksic="C24", dataset="steel-energy")
c22_cycle_features = _view(
    "c22_cycle_features", entities.machine, injection.FEATURES, _C22_SOURCE,
    "moulding cycles: process signals, rolling stats (10, 120 shots), lags, calendar", module="quality", **_C22)
c22_defect_labels = _view(
    "c22_defect_labels", entities.machine, injection.LABELS, _C22_SOURCE, "defect flag and type per shot",
    module="quality", **_C22, labels=True)
c22_machine_energy = _view(
    "c22_machine_energy", entities.machine, injection.ENERGY, _C22_SOURCE,
    "kWh and shots per machine per 15 minutes (interval end)", module="energy", **_C22)

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
