"""A user's own camera network described by a manifest: one CSV or JSONL row per frame.

Columns (CSV header or JSON keys): `path` (absolute, or relative to the manifest's folder),
`tracklet` (any id), `camera` (any id; mapped to 0-based indices in sorted order, the values kept as the
dataset's camera labels), `split` (train | query | gallery), optional `person_id` (empty -> -1
unknown), and optionally a time: either
`timestamp` (seconds on a clock shared by all cameras) or `frame` with `fps` (a column, or one value
for the whole manifest: a CSV line `# fps = 25` before the header, or a JSONL first line `{"fps": 25}`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from typing import Any, Iterator, NamedTuple

from stages.data.base import SPLITS, DatasetSplit, Tracklet, require_file
from stages.errors import AuxReidError

REQUIRED_COLUMNS = ("path", "tracklet", "camera", "split")
OPTIONAL_COLUMNS = ("person_id", "timestamp", "frame", "fps")
SETTINGS = ("fps",)
_SETTING_LINE = re.compile(r"#\s*(\w+)\s*=\s*(.*?)\s*")
_INTEGER = re.compile(r"-?\d+")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _Row(NamedTuple):
    """One parsed frame row (a tuple: cheap to build a million of)."""

    line: int
    path: str
    tracklet: str
    camera: str
    split: str
    person_id: int
    time: float | None


def load_manifest(path: str) -> DatasetSplit:
    """Parse a manifest (by extension: .csv or .jsonl) into train/query/gallery tracklets.

    A tracklet's frames are ordered by time when all of them have one, else kept in file order. The
    split has times only when every row has one.

    Args:
        path: the manifest file.

    Raises:
        AuxReidError: missing file, unknown extension or column, a malformed value, an image that does
            not exist, a tracklet in two splits or cameras; the message names the file and line.
    """
    if not path:
        raise AuxReidError("no manifest given (data.manifest and data.root are empty); give --manifest FILE (.csv or "
                           ".jsonl), or set data.manifest in the config")
    path = require_file(path, "a .csv or .jsonl manifest listing one frame per row")
    lines, settings = _read_records(path)
    fps = _number(_text(settings.get("fps")), path, "fps", positive=True)
    folder = os.path.dirname(path)
    rows = [_parse_row(record, path=path, folder=folder, line=line, fps=fps) for line, record in lines]
    if not rows:
        raise AuxReidError(f"{path} lists no frames; add one row per frame (columns {', '.join(REQUIRED_COLUMNS)})")
    _check_images_exist(rows, path)
    cameras = _camera_order({row.camera for row in rows})
    splits = _group_tracklets(rows, path=path, camera_index={c: i for i, c in enumerate(cameras)})
    if not splits["train"]:
        raise AuxReidError(f"{path} has no train rows; at least the train split is needed")
    return DatasetSplit(
        name="manifest",
        root=folder,
        train=splits["train"],
        query=splits["query"],
        gallery=splits["gallery"],
        has_times=all(row.time is not None for row in rows),
        num_cameras=len(cameras),
        fps=fps,
        meta={"cameras": cameras, "manifest": path},
        camera_labels=tuple(cameras),
    )


def _read_records(path: str) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, str]]:
    """(line number, raw record) per frame row, and the manifest-wide settings."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".csv", ".jsonl"):
        raise AuxReidError(f"manifest {path} must end in .csv or .jsonl, found '{extension or 'no extension'}'")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise AuxReidError(f"manifest {path} cannot be read ({exc.strerror}); check its permissions") from None
    try:
        # utf-8-sig: spreadsheets save UTF-8 with a byte-order mark, which would otherwise stick to the first column.
        text_lines = raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise AuxReidError(
            f"manifest {path} is not UTF-8 text (byte {raw[exc.start]:#04x} on line {line}); save it as UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    records, settings = (_csv_records if extension == ".csv" else _jsonl_records)(text_lines, path)
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise AuxReidError(f"{path}: unknown manifest setting '{unknown[0]}'; known settings: {', '.join(SETTINGS)}")
    return records, settings


def _check_columns(columns: Iterator[str], path: str, line: int) -> None:
    columns = set(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise AuxReidError(f"{path} line {line}: missing column '{missing[0]}'; required: {', '.join(REQUIRED_COLUMNS)}")
    unknown = sorted(columns - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown:
        raise AuxReidError(
            f"{path} line {line}: unknown column '{unknown[0]}'; allowed: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        )


def _csv_records(text_lines: list[str], path: str) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, str]]:
    settings = {}
    skip = 0
    while skip < len(text_lines) and (text_lines[skip].startswith("#") or not text_lines[skip].strip()):
        setting = _SETTING_LINE.fullmatch(text_lines[skip])
        if setting:
            settings[setting.group(1)] = setting.group(2)
        skip += 1
    reader = csv.reader(text_lines[skip:])
    try:
        header = next(reader, None)
        if header is None:
            raise AuxReidError(f"{path} has no header line; expected columns {', '.join(REQUIRED_COLUMNS)}")
        header = [h.strip() for h in header]
        _check_columns(iter(header), path, skip + 1)
        return _csv_rows(reader, header, path, skip), settings
    except csv.Error as exc:
        raise AuxReidError(f"{path} line {skip + reader.line_num}: not a CSV row ({exc}); fix that line") from None


def _csv_rows(reader: Any, header: list[str], path: str, skip: int) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for values in reader:
        line = skip + reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise AuxReidError(f"{path} line {line}: {len(values)} values for {len(header)} columns")
        records.append((line, dict(zip(header, values))))
    return records


def _jsonl_records(text_lines: list[str], path: str) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, str]]:
    settings = {}
    records = []
    for number, text in enumerate(text_lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise AuxReidError(f"{path} line {number}: not a JSON object ({exc})") from exc
        if not isinstance(record, dict):
            raise AuxReidError(f"{path} line {number}: expected a JSON object, found {type(record).__name__}")
        if not records and not settings and "path" not in record:
            settings = record
            continue
        _check_columns(iter(record), path, number)
        records.append((number, record))
    return records, settings


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _number(text: str, where: str, column: str, *, positive: bool = False) -> float | None:
    """A finite float from a cell's text; None when the cell is empty."""
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or (positive and number <= 0):
        raise AuxReidError(f"{where}: {column} is '{text}', expected a {'positive' if positive else 'finite'} number")
    return number


def _parse_row(record: dict[str, Any], *, path: str, folder: str, line: int, fps: float | None) -> _Row:
    """One frame row, checked; relative image paths resolved against the manifest's folder."""
    where = f"{path} line {line}"
    values = {key: _text(value) for key, value in record.items()}
    for column in REQUIRED_COLUMNS:
        if not values[column]:
            raise AuxReidError(f"{where}: {column} is empty")
    split = values["split"]
    if split not in SPLITS:
        raise AuxReidError(f"{where}: split is '{split}', expected one of {', '.join(SPLITS)}")
    person = values.get("person_id", "")
    if person and not (_INTEGER.fullmatch(person) and len(person) <= 20 and INT64_MIN <= int(person) <= INT64_MAX):
        raise AuxReidError(f"{where}: person_id is '{person}', expected an integer within int64 "
                           "(or empty for unknown)")
    timestamp = _number(values.get("timestamp", ""), where, "timestamp")
    frame = _number(values.get("frame", ""), where, "frame")
    row_fps = _number(values.get("fps", ""), where, "fps", positive=True) or fps
    if timestamp is not None and frame is not None:
        raise AuxReidError(f"{where}: give either timestamp or frame, not both")
    if frame is not None and row_fps is None:
        raise AuxReidError(f"{where}: frame given without fps; add an fps column or a '# fps = 25' line before the header")
    if frame is not None and not math.isfinite(frame / row_fps):
        raise AuxReidError(f"{where}: frame {values['frame']} at fps {row_fps:g} is not a finite time in seconds; "
                           "check the frame and fps values")
    return _Row(
        line=line,
        path=os.path.normpath(os.path.join(folder, os.path.expanduser(values["path"]))),
        tracklet=values["tracklet"],
        camera=values["camera"],
        split=split,
        person_id=int(person) if person else -1,
        time=timestamp if frame is None else frame / row_fps,
    )


def _check_images_exist(rows: list[_Row], path: str) -> None:
    """Every image listed once and present; one scandir per image folder instead of one stat per frame."""
    listings: dict[str, set[str]] = {}
    seen: dict[str, int] = {}
    for row in rows:
        if seen.setdefault(row.path, row.line) != row.line:
            raise AuxReidError(f"{path} line {row.line}: image {row.path} is already listed on line {seen[row.path]}")
        folder, name = os.path.split(row.path)
        if folder not in listings:
            try:
                with os.scandir(folder) as entries:
                    listings[folder] = {e.name for e in entries}
            except (FileNotFoundError, NotADirectoryError):
                listings[folder] = set()
        if name not in listings[folder]:
            raise AuxReidError(f"{path} line {row.line}: image {row.path} does not exist")


def _camera_order(labels: set[str]) -> list[str]:
    """Camera labels in index order: numerically when all are integers, else alphabetically."""
    if all(_INTEGER.fullmatch(label) and len(label) <= 20 for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _group_tracklets(
    rows: list[_Row], *, path: str, camera_index: dict[str, int]
) -> dict[str, tuple[Tracklet, ...]]:
    """Tracklets per split, in order of first appearance; each must keep one split, camera and person."""
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        members = groups.setdefault(row.tracklet, [])
        if members:
            first = members[0]
            for column in ("split", "camera", "person_id"):
                if getattr(row, column) != getattr(first, column):
                    raise AuxReidError(
                        f"{path} line {row.line}: tracklet '{row.tracklet}' has {column} '{getattr(row, column)}' "
                        f"but '{getattr(first, column)}' on line {first.line}; a tracklet has one {column}"
                    )
        members.append(row)
    all_times = all(row.time is not None for row in rows)
    splits: dict[str, list[Tracklet]] = {which: [] for which in SPLITS}
    for name, members in groups.items():
        timed = all(m.time is not None for m in members)
        ordered = sorted(members, key=lambda m: m.time) if timed else members
        splits[members[0].split].append(
            Tracklet(
                frames=tuple(m.path for m in ordered),
                person_id=members[0].person_id,
                camera=camera_index[members[0].camera],
                times=tuple(m.time for m in ordered) if all_times else None,
                name=name,
            )
        )
    return {which: tuple(tracklets) for which, tracklets in splits.items()}
