"""Catalogue sources: CSV, JSONL and Parquet, streamed record by record.

A source never holds more than one record (CSV, JSONL) or one row group slice
(Parquet, `PARQUET_BATCH` rows) in memory, whatever the file size. Each record comes
with the line it starts on (CSV, JSONL; the header is line 1 of a CSV) or its row
number (Parquet), so a bad record can be reported where a person can find it.

Bytes that are not UTF-8 do not stop the stream: they are carried as surrogate
escapes and the transform step rejects the field that holds them, by name.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from samestyle.errors import ConfigError

log = logging.getLogger(__name__)
FORMATS = ("csv", "jsonl", "parquet")
PARQUET_BATCH = 512
# A data: URI photo of up to MAX_PHOTO_BYTES is ~4/3 of that in base64; the transform
# rejects oversize values with a reason, the CSV reader must not choke on them first.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


@dataclass
class RawRecord:
    """One record as read. `fields` is None when the record could not be parsed at
    all; then `error` is (field, reason) with field "record"."""

    line: int
    fields: dict[str, Any] | None
    error: tuple[str, str] | None = None


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown catalogue format [{fmt}]", fix=f"use one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    for s in reversed(suffixes):
        if s in (".csv", ".tsv"):
            return "csv"
        if s in (".jsonl", ".ndjson", ".json"):
            return "jsonl"
        if s in (".parquet", ".pq"):
            return "parquet"
    raise ConfigError(f"cannot tell the format of [{path}] from its name",
                      fix="name it .csv, .jsonl or .parquet, or pass --format")


class Source:
    """Iterate a catalogue file as RawRecords. `columns` is the header (CSV) or the
    schema (Parquet), None for JSONL, whose records may each have other keys."""

    def __init__(self, path: str | Path, fmt: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"catalogue [{self.path}] does not exist or is not a file",
                              fix="pass the path of a .csv, .jsonl or .parquet catalogue")
        self.format = detect_format(self.path, fmt)
        self.columns: list[str] | None = self._columns()

    @property
    def base_dir(self) -> Path:
        """Relative photo paths are relative to the catalogue file."""
        return self.path.resolve().parent

    def _columns(self) -> list[str] | None:
        if self.format == "csv":
            with self.path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
                header = next(csv.reader(f, dialect=self._dialect()), None)
            if not header:
                raise ConfigError(f"catalogue [{self.path}] is empty: no header line",
                                  fix="the first line of a CSV catalogue names its columns")
            bad = [h for h in header if any(0xDC80 <= ord(c) <= 0xDCFF for c in h)]
            if bad:
                raise ConfigError(f"the header of [{self.path}] is not valid UTF-8: {bad!r}",
                                  fix="save the catalogue as UTF-8")
            return [h.strip() for h in header]
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(self.path).schema_arrow.names)
        return None

    def _dialect(self):
        return csv.excel_tab if self.path.suffix.lower() == ".tsv" else csv.excel

    def estimate_total(self) -> int | None:
        """Records in the file, for the progress bar: exact for Parquet, a line count
        (multi-line quoted CSV fields make it an overestimate) for text files."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        n = 0
        last = b"\n"
        with self.path.open("rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
        n += last != b"\n"
        return max(0, n - (1 if self.format == "csv" else 0))

    def __iter__(self) -> Iterator[RawRecord]:
        if self.format == "csv":
            return self._csv()
        if self.format == "jsonl":
            return self._jsonl()
        return self._parquet()

    def _csv(self) -> Iterator[RawRecord]:
        csv.field_size_limit(min(CSV_FIELD_LIMIT, sys.maxsize))
        header = self.columns or []
        with self.path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
            reader = csv.reader(f, dialect=self._dialect())
            next(reader, None)
            prev = reader.line_num
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield RawRecord(prev + 1, None, ("record", f"malformed CSV ({exc})"))
                    prev = reader.line_num
                    continue
                start, prev = prev + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    yield RawRecord(start, None, ("record", f"has {len(row)} fields, the header has {len(header)}"))
                    continue
                yield RawRecord(start, dict(zip(header, row)))

    def _jsonl(self) -> Iterator[RawRecord]:
        with self.path.open("rb") as f:
            for line_no, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                text = raw.decode("utf-8", errors="surrogateescape")
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield RawRecord(line_no, None, ("record", f"invalid JSON ({exc.msg} at column {exc.colno})"))
                    continue
                if not isinstance(obj, dict):
                    yield RawRecord(line_no, None, ("record", f"expected a JSON object, got {type(obj).__name__}"))
                    continue
                yield RawRecord(line_no, obj)

    def _parquet(self) -> Iterator[RawRecord]:
        import pyarrow.parquet as pq

        row = 0
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=PARQUET_BATCH):
            for rec in batch.to_pylist():
                row += 1
                yield RawRecord(row, rec)


def open_source(path: str | Path, fmt: str | None = None) -> Source:
    return Source(path, fmt)
