"""NASA C-MAPSS turbofan run-to-failure (C31): ``train_FD00x.txt`` -> sensor readings, failure events, RUL labels.

Decisions (see docs/pipelines.md):
- Entity: ``unit_id = "FD00x-u###"`` (engine numbers restart at 1 in every FD file, so they are namespaced;
  ``FD00x-t###`` for the engines of NASA's ``test_FD00x.txt``, which are not the training file's).
- Time: the files count operating cycles (flights), not clock time. Cycle ``c`` is stamped
  ``CYCLE_EPOCH + (c - 1) * CYCLE_PERIOD`` (2000-01-01T00:00Z, one hour per cycle), a synthetic but
  monotonic UTC instant that point-in-time joins can use; ``cycle`` is kept as a column.
- Units: Saxena et al. (2008), Table 2 (°R, psia, rpm, pps/psi, lbm/s); operating settings as published:
  altitude (kft), Mach number, throttle resolver angle (TRA, %).
- Labels: RUL (cycles) = last cycle of the unit - cycle; the last cycle is a failure event. Only for run-to-failure
  files: NASA's ``test_FD00x.txt`` engines stop at a random cycle before failing, so a ``test_*`` file gives
  sensor readings alone (its RUL is unknown here, not 0 at the last cycle).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipelines.adapters.source import WHITESPACE, read_source
from pipelines.canonical import (
    SOURCE_ROW,
    TIMESTAMP,
    Canonical,
    Column,
    Table,
    coerce_numeric,
    count_problems,
    empty_rejects,
    join_reasons,
    reason_where,
    row_text,
)

DATASET = "cmapss"
KSIC = "C31"
CYCLE_EPOCH = pd.Timestamp("2000-01-01T00:00:00Z")
CYCLE_PERIOD = pd.Timedelta(hours=1)

# required: the settings place a row in its operating regime (FD002/FD004); a row without them cannot be placed,
# and in the regime fit it would pull every other row into one regime
SETTINGS: dict[str, Column] = {
    "op_setting_1": Column("kft", -1.0, 45.0, description="altitude", required=True),
    "op_setting_2": Column("1", -0.01, 0.9, description="Mach number", required=True),
    "op_setting_3": Column("%", 0.0, 110.0, description="throttle resolver angle (TRA)", required=True),
}
# name -> (unit, description); order of the 21 sensor columns in the files.
SENSORS: dict[str, tuple[str, str]] = {
    "t2": ("degR", "total temperature at fan inlet"),
    "t24": ("degR", "total temperature at LPC outlet"),
    "t30": ("degR", "total temperature at HPC outlet"),
    "t50": ("degR", "total temperature at LPT outlet"),
    "p2": ("psia", "pressure at fan inlet"),
    "p15": ("psia", "total pressure in bypass-duct"),
    "p30": ("psia", "total pressure at HPC outlet"),
    "nf": ("rpm", "physical fan speed"),
    "nc": ("rpm", "physical core speed"),
    "epr": ("1", "engine pressure ratio (P50/P2)"),
    "ps30": ("psia", "static pressure at HPC outlet"),
    "phi": ("pps/psi", "ratio of fuel flow to Ps30"),
    "nrf": ("rpm", "corrected fan speed"),
    "nrc": ("rpm", "corrected core speed"),
    "bpr": ("1", "bypass ratio"),
    "farb": ("1", "burner fuel-air ratio"),
    "htbleed": ("1", "bleed enthalpy"),
    "nf_dmd": ("rpm", "demanded fan speed"),
    "pcnfr_dmd": ("rpm", "demanded corrected fan speed"),
    "w31": ("lbm/s", "HPT coolant bleed"),
    "w32": ("lbm/s", "LPT coolant bleed"),
}
# Sensors that carry degradation signal (the other seven are constant within an operating regime).
INFORMATIVE = ("t24", "t30", "t50", "p30", "nf", "nc", "ps30", "phi", "nrf", "nrc", "bpr", "htbleed", "w31", "w32")
RAW_COLUMNS = ["unit", "cycle", *SETTINGS, *SENSORS]
SUBSETS = ("FD001", "FD002", "FD003", "FD004")
REGIMES = {"FD001": 1, "FD002": 6, "FD003": 1, "FD004": 6}
MAX_UNIT = 1_000_000_000
MAX_CYCLE = 1_000_000  # (c-1) hours after CYCLE_EPOCH must stay a valid timestamp

SENSOR_COLUMNS: dict[str, Column] = {
    "cycle": Column("cycle", 1, 10_000, dtype="int64", description="operating cycle since the start of the record"),
    **SETTINGS,
    **{name: Column(unit, 0.0, None, description=d) for name, (unit, d) in SENSORS.items()},
}


def subset_of(path: Path, subset: str | None = None) -> str:
    """The file's subset (FD001..FD004): ``subset`` where given (``sfai ingest cmapss --subset``), else the one its
    name holds. A file named otherwise (``units.txt``) is refused without ``subset``; one whose name holds another
    subset than ``subset`` is refused too (its engines would be stored under the wrong subset)."""
    m = re.search(r"FD00[1-4]", path.name.upper())
    if subset is not None:
        given = check_subset(subset)
        if m and m.group(0) != given:
            raise ValueError(f"{path.name}: its name says {m.group(0)}, not --subset {given}; rename the file or "
                             "drop --subset")
        return given
    if not m:
        raise ValueError(f"{path.name}: cannot tell the C-MAPSS subset; expected a name like train_FD001.txt, or "
                         f"give it: --subset {'|'.join(SUBSETS)}")
    return m.group(0)


def check_subset(subset: str) -> str:
    """``--subset`` as one of FD001..FD004 (any letter case)."""
    given = str(subset).strip().upper()
    if given not in SUBSETS:
        raise ValueError(f"--subset {str(subset)[:40]!r}: expected one of {', '.join(SUBSETS)}")
    return given


def files_in(path: Path) -> list[Path]:
    """One file, or every ``*FD00x*.txt`` in a folder (train files only when both are there)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("train_FD00*.txt")) or sorted(path.glob("*FD00*.txt"))
        if not files:
            raise ValueError(f"{path}: no C-MAPSS files (train_FD00x.txt) in this folder")
        return files
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    return [path]


def read_raw(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The file as published, with named columns and ``source_row``; the lines set aside because they do not
    have the 26 fields (a truncated line is not filled in); and notes on how it was read."""
    return read_source(path, "a C-MAPSS train_FD00x.txt", sep=WHITESPACE, names=RAW_COLUMNS)


def read(path: Path, subset: str | None = None) -> Canonical:
    """``subset``: the C-MAPSS subset of a file whose name does not say it (``sfai ingest cmapss --subset``)."""
    frames, rejects, warnings, total = [], [], [], 0
    for f in files_in(path):
        subset_name = subset_of(f, subset)
        raw, malformed, read_warnings = read_raw(f)
        warnings += read_warnings
        total += len(raw) + len(malformed)
        if len(malformed):
            rejects.append(malformed.assign(file=f.name))
        original = raw.copy(deep=False)  # the values as read, for the quarantine (copy-on-write: no copy made)
        raw, why = coerce_numeric(raw, RAW_COLUMNS)
        # rows we cannot place at all: no key or no time (missing, not a number, not a whole number)
        below_one = raw["unit"] < 1
        place = join_reasons(
            reason_where(original["unit"].isna(), "unit: missing"),
            count_problems(raw["unit"], "unit", MAX_UNIT),
            reason_where(below_one, "unit: " + raw["unit"].astype(str) + " is not an engine number (1 or more)")
            if below_one.any() else None,
            reason_where(original["cycle"].isna(), "cycle: missing"),
            count_problems(raw["cycle"], "cycle", MAX_CYCLE),
        )
        bad = raw["unit"].isna() | raw["cycle"].isna() | (place != "" if place is not None else False)
        if bad.any():
            rj = raw.loc[bad, [SOURCE_ROW]].copy()
            rj["reason"] = join_reasons(place, why)[bad].values
            rj["raw"] = row_text(original.loc[bad, RAW_COLUMNS], " ").values
            rj["file"] = f.name
            rejects.append(rj)
            raw = raw.loc[~bad].copy()
        good_why = why[~bad]
        raw["_invalid"] = good_why.values  # wrong-type values in measurement columns: quarantined by validation
        raw["subset"] = subset_name
        raw["file"] = f.name
        frames.append(raw)
    df = pd.concat(frames, ignore_index=True)
    unit_no = df["unit"].astype("int64")
    cycle = df["cycle"].astype("int64")
    # NASA's test engines are other engines than the training file's of the same number: "-t" keeps them apart
    # (a test_FD001.txt unit 3 had been appended to the training engine FD001-u003's cycles)
    tested = df["file"].str.lower().str.startswith("test_")
    # astype(str): with no usable row the mapped (empty) columns keep bool/int64 and the sum would raise; validation
    # then refuses the file with its usual "N of N rows failed" line and the first row's reason
    df["unit_id"] = (
        df["subset"].astype(str)
        + tested.map({True: "-t", False: "-u"}).astype(str)
        + unit_no.map("{:03d}".format).astype(str)
    )
    df["cycle"] = cycle
    df[TIMESTAMP] = CYCLE_EPOCH + pd.to_timedelta(cycle - 1, unit="h")
    readings = df[["unit_id", TIMESTAMP, SOURCE_ROW, "file", "subset", "_invalid", *SENSOR_COLUMNS]]
    last = df.groupby("unit_id")["cycle"].transform("max")
    labels = pd.DataFrame(
        {
            "unit_id": df["unit_id"],
            TIMESTAMP: df[TIMESTAMP],
            SOURCE_ROW: df[SOURCE_ROW],
            "file": df["file"],
            "cycle": cycle,
            "rul": (last - cycle).astype("int64"),
            "failed": (cycle == last),
        }
    )
    # truncated engines (NASA's test_FD00x.txt) did not fail at their last cycle: no labels, no failure events
    test_files = [f for f in df["file"].unique() if f.lower().startswith("test_")]  # a few names, not every row
    if test_files:
        labels = labels[~df["file"].isin(test_files)]
    ends = labels[labels["failed"]]
    events = pd.DataFrame(
        {
            "unit_id": ends["unit_id"],
            TIMESTAMP: ends[TIMESTAMP],
            SOURCE_ROW: ends[SOURCE_ROW],
            "file": ends["file"],
            "event": "failure",
            "cycles": cycle[ends.index],
        }
    ).reset_index(drop=True)
    notes = {
        "time": f"synthetic: cycle c -> {CYCLE_EPOCH.isoformat()} + (c-1) x {CYCLE_PERIOD} (UTC)",
        "entity": "unit_id = <FD subset>-u<engine number, 3 digits> (-t for NASA's test_FD00x.txt engines)",
    }
    tables = {
        "sensor_readings": Table("sensor_readings", "unit_id", SENSOR_COLUMNS, readings, notes),
        "labels": Table(
            "labels",
            "unit_id",
            {
                "cycle": Column("cycle", 1, 10_000, dtype="int64"),
                "rul": Column("cycle", 0, None, dtype="int64"),
                "failed": Column("1", dtype="bool"),
            },
            labels,
            notes,
        ),
        "events": Table("events", "unit_id", {"cycles": Column("cycle", 1, None, dtype="int64")}, events, notes),
    }
    if labels.empty and len(df):  # test files only: rows to score
        del tables["labels"], tables["events"]
    rj = pd.concat(rejects, ignore_index=True) if rejects else empty_rejects()
    return Canonical(DATASET, KSIC, str(path), tables, rj, total, warnings)
