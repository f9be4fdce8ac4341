"""Batch scoring for data scientists: ``sfai predict`` on files of any size, through the same ONNX runtime
the API serves from.

- **Row-wise families** (``failure``, ``defect``: each row is scored on its own) stream the CSV in chunks of
  ``chunk_rows``: memory stays bounded by one chunk, whatever the file's size. With ``SFAI_RAY_ADDRESS`` set
  (or ``use_ray=True``), the chunks run on Ray Data instead: each Ray worker loads the model once (the ONNX
  bytes travel through the object store, so workers need no shared disk) and the driver writes the rows back in order.
- **Series families** (``rul``, ``energy``: a prediction needs a unit's or the plant's whole history) read
  the file at once, as before.

The output is written to ``OUT.part`` and renamed when complete: a failed run leaves no half-written file.
An error in a chunk names the row of the file, not of the chunk.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from models.files import UNREADABLE, blank_rows, csv_format, unreadable
from pipelines.adapters.source import TextFormat
from serving.errors import InvalidInput
from serving.runtime import OnnxModel
from serving.settings import ray_address

ROW_ID = {"failure": "UDI", "defect": "row_id"}  # row-wise families and the id column of their output
# the same id under the feature store's name (a point-in-time frame written to a file): its ids are the rows' own.
# A defect frame's wafers are answered under their SECOM ``row_id`` where the frame has it (``secom_features:*``), else
# under the entity key ``lot_id`` (``secom-0001``) as it is
ID_ALIASES = {"UDI": "udi", "row_id": "lot_id"}
# other names a file gives the id column (a MES export's ``wafer_id``): named in the message, as is the id in other
# letters or spacing (``Row ID``, ``row id``, ``ROW_ID``), as a measurement column in other letters is
ID_NEAR = {"row_id": ("wafer_id", "wafer"), "UDI": ()}
# options of the row-by-row scorers (the file streams through)
ROW_OPTIONS = ("recent_failure_rate", "threshold", "explain", "top_k")
PLAIN_CSV = {"encoding": "utf-8-sig", "sep": ",", "decimal": "."}
CHUNK_ROWS = 100_000
# cells per chunk of a wide file: a SECOM chunk of 100,000 wafers x 590 measurements had held ~2.4 GB at its peak
# (the frame, the measurements as float64, the model inputs and their temporaries); 5 million cells is ~8,500 wafers
CHUNK_CELLS = 5_000_000


def score_file(
    family: str,
    model_dir: Path,
    input_path: Path,
    dataset: str,
    output: Path,
    *,
    options: dict | None = None,
    threads: int = 1,
    chunk_rows: int = CHUNK_ROWS,
    use_ray: bool | None = None,
    progress: bool = False,
) -> dict:
    """Score ``input_path`` with the model in ``model_dir`` into ``output`` (CSV); returns a small report: rows,
    chunks, engine, ``notes`` (about the file: ids) and ``warnings`` (about the rows, the file's totals: defect's
    wafers far from the training data, mostly missing or tested long after it; on Ray each worker logs its own)."""
    from models.families import get_family

    fam = get_family(family)
    options = dict(options or {})
    # options the row-by-row scorers take (defect's recent_failure_rate); energy's start and horizon go to predict
    row_options = {k: v for k, v in options.items() if k in ROW_OPTIONS and v is not None}
    if use_ray is None:
        use_ray = bool(ray_address())
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    engine = "local"
    notes: list[str] = []
    warnings: list[str] = []
    try:
        if family not in ROW_ID:
            frame = fam.load("predict").predict(OnnxModel(model_dir, threads=threads), input_path, dataset, **options)
            frame.to_csv(tmp, index=False)
            if "calendar_used" in frame.attrs:  # energy: the days forecast that were no ordinary weekday, on stderr
                from models.energy.calendar import describe_days

                notes.append(f"calendar used for the days forecast: {describe_days(frame.attrs['calendar_used'])}")
            rows, chunks = len(frame), 1
        else:
            id_col = ROW_ID[family]
            what = importlib.import_module(f"models.{family}.features").WHAT
            fmt = csv_format(input_path, what)
            notes = list(fmt.notes)
            header = _header(input_path, fmt, what)
            if family == "defect":
                from models.defect.features import check_header

                check_header(header)  # a measurement named twice: pandas would read the second as f060.1
                chunk_rows = min(chunk_rows, max(1_000, CHUNK_CELLS // max(len(header), 1)))
            has_ids = id_col in header or ID_ALIASES.get(id_col) in header  # the store's name: renamed in _chunks
            if family == "defect" and not has_ids:
                raise InvalidInput(f"input lacks the column {id_col!r}{_near_id(header, id_col)}")
            if not has_ids:  # said, so that nobody joins the answers back by a number the file never held
                notes.append(f"{input_path.name} has no {id_col!r} column{_near_id(header, id_col)}: its rows are "
                             f"numbered 1..n in {output.name}, in the file's order")
            # Ray Data reads UTF-8 with commas only, and the id by the family's name
            if use_ray and id_col in header and fmt.read_csv_kw() == PLAIN_CSV:
                batches, engine = _ray_batches(family, model_dir, input_path, chunk_rows, row_options), "ray"
            else:
                model = OnnxModel(model_dir, threads=threads)
                # defect: the file's warnings once, with its totals (each chunk had said its own: "38536 of 100000
                # wafers ...", then "2624 of 6680 ...")
                quiet = {"warn": False} if family == "defect" else {}
                batches = _local_batches(family, model, _chunks(input_path, chunk_rows, id_col, fmt, what), id_col,
                                         {**row_options, **quiet})
            rows = chunks = 0
            repeats = RepeatedIds(id_col)
            predict_mod = importlib.import_module(fam.predict_module)
            merge = getattr(predict_mod, "merge_notes", None)  # defect: the chunks' findings, added up
            found: dict = {}
            for out in _progress(batches, progress):
                if merge is not None:
                    found = merge(found, out.attrs.get("notes") or {})
                if hasattr(predict_mod, "csv_ready"):
                    out = predict_mod.csv_ready(out)
                out.to_csv(tmp, index=False, header=chunks == 0, mode="w" if chunks == 0 else "a")
                repeats.add(out[id_col])
                rows += len(out)
                chunks += 1
            if chunks == 0:
                raise InvalidInput(f"{input_path.name}: no rows to score")
            notes.extend(repeats.notes(output.name))
            found.pop("repeated_ids", None)  # said once for the file, above
            warnings = predict_mod.render_notes(found) if merge is not None else []
        os.replace(tmp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return {"rows": rows, "chunks": chunks, "engine": engine, "notes": notes, "warnings": warnings}


class RepeatedIds:
    """Ids given to more than one row (two wafers both ``row_id`` 17, a UDI sent twice): each row is still answered,
    on its own line in the file's order, but an answer joined back by its id lands on both. Said in a note, as the
    numbering of a file without ids is; it had passed in silence. Ids past ``limit`` are not checked (memory)."""

    def __init__(self, id_col: str, limit: int = 2_000_000) -> None:
        self.id_col, self.limit = id_col, limit
        self.seen: set[str] = set()
        self.first: str | None = None
        self.count = 0  # rows whose id an earlier row had

    def add(self, ids: pd.Series) -> None:
        if len(self.seen) >= self.limit:
            return
        text = ids.astype(str)
        dup = text.duplicated().to_numpy() | text.isin(self.seen).to_numpy()
        if dup.any():
            self.count += int(dup.sum())
            if self.first is None:
                self.first = str(text.iloc[int(dup.argmax())])
        self.seen.update(text)

    def notes(self, output: str) -> list[str]:
        if not self.count:
            return []
        return [f"{self.count} row(s) repeat the {self.id_col} of an earlier row (the first: {self.first!r}): each "
                f"row is answered on its own line of {output}, in the file's order; join the answers back by row "
                f"order, not by {self.id_col}"]


def _id_key(name: object) -> str:
    return re.sub(r"[\s_-]+", "_", str(name).strip().lower())


def _near_id(header: list, id_col: str) -> str:
    """Where the file has the id column under a near name (``Row ID``, ``ROW_ID``, ``wafer_id``; ``Udi``), the
    words that name it: the file's own name is not read (column names are case-sensitive)."""
    wanted = {_id_key(id_col), *ID_NEAR.get(id_col, ())}
    found = [c for c in header if c not in (id_col, ID_ALIASES.get(id_col)) and _id_key(c) in wanted]
    return f" (the file has {str(found[0])!r}: rename it {id_col})" if found else ""


def _header(path: Path, fmt: TextFormat, what: str) -> list[str]:
    try:
        return list(pd.read_csv(path, nrows=0, **fmt.read_csv_kw()).columns)
    except UNREADABLE as e:
        raise unreadable(path, what, e) from None


def _chunks(
    path: Path, chunk_rows: int, id_col: str, fmt: TextFormat, what: str
) -> Iterator[tuple[int, pd.DataFrame]]:
    """(offset of the chunk's first row, chunk). Ids are read as text, so they come back exactly as given
    (``007`` stays ``007``, and one blank id cannot turn the others into ``1.0``); a blank id is refused. Rows in
    which every cell is empty (the ``,,,,,,`` lines an Excel export ends with) are skipped, as training skips
    them: they had been refused as a row without its id."""
    offset = 0
    alias = ID_ALIASES.get(id_col)
    try:
        reader = pd.read_csv(path, chunksize=chunk_rows, low_memory=False,
                             dtype={id_col: str, **({alias: str} if alias else {})}, **fmt.read_csv_kw())
        for chunk in reader:
            read = len(chunk)
            if alias in chunk.columns and id_col not in chunk.columns:  # they had been numbered 1..n instead
                chunk = chunk.rename(columns={alias: id_col})
            blank = blank_rows(chunk)
            if blank.any():
                chunk = chunk[~blank]
            if len(chunk):
                _check_ids(chunk, id_col, offset)
                yield offset, chunk
            offset += read
    except UNREADABLE as e:
        raise unreadable(path, what, e) from None


def _check_ids(frame: pd.DataFrame, id_col: str, offset: int | None) -> None:
    """A blank id is refused, naming the file's row where the offset of ``frame`` in the file is known."""
    if id_col not in frame.columns:
        return
    ids = frame[id_col]
    blank = ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy()
    if blank.any():
        where = f" row {offset + int(blank.argmax()) + 1}" if offset is not None else ""
        raise InvalidInput(f"column {id_col!r}{where} is empty: every row needs its id")


def _file_rows(message: str, offset: int) -> str:
    """A chunk's error message with its row numbers turned into the file's."""
    return re.sub(r"\brow (\d+)", lambda m: f"row {int(m.group(1)) + offset}", message)


def _local_batches(
    family: str, model: OnnxModel, chunks: Iterator[tuple[int, pd.DataFrame]], id_col: str, options: dict | None = None
) -> Iterator[pd.DataFrame]:
    from serving.predictions import scorer

    score = scorer(family)
    for offset, chunk in chunks:
        if id_col not in chunk.columns:  # ids 1..n over the whole file, as a single read would number them
            # joined at once: ``assign`` on a wide chunk (pandas reads it as one block per column) printed pandas'
            # PerformanceWarning "DataFrame is highly fragmented" to the user
            ids = pd.DataFrame({id_col: range(offset + 1, offset + len(chunk) + 1)}, index=chunk.index)
            chunk = pd.concat([chunk, ids], axis=1)
        try:
            yield score(model, chunk, **(options or {}))
        except InvalidInput as e:
            raise InvalidInput(_file_rows(str(e), offset)) from None


_WORKER_MODELS: dict[str, OnnxModel] = {}  # per Ray worker process: models loaded from bytes, by checksum


def _ray_score(batch: pd.DataFrame, family: str, onnx_ref, manifest: str, options: dict) -> pd.DataFrame:  # noqa: ANN001
    """One Ray Data batch: the model is loaded once per worker process (tasks reuse their workers), then the
    batch is scored with the family's code. Plain tasks, not an actor pool: on a one-CPU cluster an actor would
    hold the only CPU the file's read tasks need."""
    from models.families import get_family
    from serving.predictions import scorer

    key = json.loads(manifest).get("onnx_sha256") or str(onnx_ref)
    model = _WORKER_MODELS.get(key)
    if model is None:
        import ray

        onnx_bytes = ray.get(onnx_ref)  # fetched from the object store once per worker
        folder = Path(tempfile.mkdtemp(prefix="sfai-batch-model-"))
        (folder / "model.onnx").write_bytes(onnx_bytes)
        (folder / "manifest.json").write_text(manifest)
        model = _WORKER_MODELS[key] = OnnxModel(folder)  # the manifest's checksum is verified here too
    blank = blank_rows(batch)
    if blank.any():  # an Excel export's empty rows, skipped as the local stream skips them
        batch = batch[~blank]
    _check_ids(batch, ROW_ID[family], None)
    out = scorer(family)(model, batch, **options)
    ready = getattr(importlib.import_module(get_family(family).predict_module), "csv_ready", None)
    return ready(out) if ready is not None else out  # defect's explanations as JSON text: one Arrow type


def _ray_batches(
    family: str, model_dir: Path, path: Path, chunk_rows: int, options: dict | None = None
) -> Iterator[pd.DataFrame]:
    import ray

    from pipelines.runner import ray_init

    ray_init()
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the output keeps the input's row order
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # ids as text, as the local stream reads them (``007`` stays ``007``; a blank one is null, then refused)
    ids = pacsv.ConvertOptions(column_types={ROW_ID[family]: pa.string()}, strings_can_be_null=True)
    ds = ray.data.read_csv(str(path.resolve()), convert_options=ids)
    model = ray.put((model_dir / "model.onnx").read_bytes())  # once in the object store, not once per task
    scored = ds.map_batches(
        _ray_score,
        fn_args=(family, model, (model_dir / "manifest.json").read_text(), dict(options or {})),
        batch_format="pandas",
        batch_size=chunk_rows,
    )
    try:
        yield from scored.iter_batches(batch_format="pandas", batch_size=None)
    except Exception as e:  # Ray wraps the worker's error: surface SFAI's one-line message where it is one
        cause = e
        while cause is not None and not isinstance(cause, InvalidInput):
            cause = cause.__cause__ or getattr(cause, "cause", None)
        if cause is not None:
            raise InvalidInput(str(cause)) from None
        raise


def _progress(batches: Iterator[pd.DataFrame], enabled: bool) -> Iterator[pd.DataFrame]:
    import sys

    from tqdm import tqdm

    with tqdm(desc="scoring", unit="rows", file=sys.stderr, disable=not enabled, leave=False) as bar:
        for b in batches:
            bar.update(len(b))
            yield b
