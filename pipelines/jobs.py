"""What each pipeline does: which adapter reads the source, which transform makes which feature view from
which canonical table, and what is fitted once on the driver (e.g. C-MAPSS operating regimes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from feature_store import FeatureView
from pipelines import demo, views
from pipelines.adapters import ai4i, cmapss, secom, steel_energy
from pipelines.canonical import Canonical
from pipelines.transforms import injection, machining, semiconductor, steel, turbofan


@dataclass(frozen=True)
class Output:
    view: FeatureView
    table: str  # the canonical table it reads
    transform: Callable[..., pd.DataFrame]  # DataFrame of whole entities -> rows of the view
    uses_params: bool = False  # the transform takes ``params`` fitted by ``Job.prepare``


@dataclass(frozen=True)
class Job:
    dataset: str
    ksic: str
    read: Callable[..., Canonical]
    outputs: tuple[Output, ...]
    primary: str  # the table whose rows the run report counts ("raw sensor rows")
    measurements: tuple[str, ...]  # its measurement columns, for the missing-value report
    missing_strategy: str = "keep"  # what the transforms do with gaps (reported)
    gaps_kept: tuple[str, ...] = ()  # measurements whose gaps stay gaps under that strategy
    prepare: Callable[[dict[str, pd.DataFrame]], object] | None = None
    file_required: bool = True


def _turbofan_prepare(tables: dict[str, pd.DataFrame]) -> turbofan.TurbofanParams:
    return turbofan.prepare(tables["sensor_readings"])


JOBS: dict[str, Job] = {
    "cmapss": Job(
        dataset="cmapss",
        ksic=cmapss.KSIC,
        read=cmapss.read,
        outputs=(
            Output(views.cmapss_features, "sensor_readings", turbofan.features, uses_params=True),
            Output(views.cmapss_labels, "labels", turbofan.labels),
        ),
        primary="sensor_readings",
        measurements=tuple(cmapss.SENSORS),
        missing_strategy="ffill",
        prepare=_turbofan_prepare,
    ),
    "ai4i": Job(
        dataset="ai4i",
        ksic=ai4i.KSIC,
        read=ai4i.read,
        outputs=(
            Output(views.ai4i_features, "sensor_readings", machining.features),
            Output(views.ai4i_labels, "labels", machining.labels),
        ),
        primary="sensor_readings",
        measurements=("air_temp_k", "process_temp_k", "rotational_speed_rpm", "torque_nm", "tool_wear_min"),
    ),
    "secom": Job(
        dataset="secom",
        ksic=secom.KSIC,
        read=secom.read,
        outputs=(
            Output(views.secom_features, "sensor_readings", semiconductor.features),
            Output(views.secom_labels, "labels", semiconductor.labels),
        ),
        primary="sensor_readings",
        measurements=tuple(secom.FEATURES),
    ),
    "steel-energy": Job(
        dataset="steel-energy",
        ksic=steel_energy.KSIC,
        read=steel_energy.read,
        outputs=(Output(views.steel_energy_features, "meter_readings", steel.features),),
        primary="meter_readings",
        measurements=steel.READINGS,
        missing_strategy="ffill",
        gaps_kept=steel.GAPS_KEPT,
    ),
    "c22-demo": Job(
        dataset="c22-demo",
        ksic=demo.KSIC,
        read=demo.read,
        outputs=(
            Output(views.c22_cycle_features, "sensor_readings", injection.features),
            Output(views.c22_defect_labels, "labels", injection.labels),
            Output(views.c22_machine_energy, "meter_readings", injection.energy),
        ),
        primary="sensor_readings",
        measurements=injection.SIGNALS,
        file_required=False,
    ),
}


def get_job(dataset: str) -> Job:
    try:
        return JOBS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(JOBS)}") from None
