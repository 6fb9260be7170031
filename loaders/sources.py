"""Catalogue sources: CSV, JSONL and Parquet, streamed record by record.

A source never holds more than one record (CSV, JSONL) or one row group slice
(Parquet, `PARQUET_BATCH` rows) in memory, whatever the file size. Each record comes
with the line it starts on (CSV, JSONL; the header is line 1 of a CSV) or its row
number (Parquet), so a bad record can be reported where a person can find it.

Bytes that are not UTF-8 do not stop the stream: they are carried as surrogate
escapes and the transform step rejects the field that holds them, by name.

CSV as real tools write it: a UTF-8 byte-order mark is dropped (a UTF-16 one switches
to UTF-16, as Excel's "Unicode text" writes), the delimiter is the one given or the
one of `,` `;` tab `|` the header uses most (tab for .tsv), `encoding` names any codec
Python knows. A quote that is never closed does not swallow the rows after it: the
record it opens is reported on its line with the span it would have run over, and the
following lines are read again as records of their own (`_csv_records`).
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import sys
from collections import deque
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
# A quoted field may hold line breaks; one running over more physical lines than this
# is taken for a quote that was never closed.
MAX_RECORD_LINES = 1000
DELIMITERS = (",", ";", "\t", "|")


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

    def __init__(self, path: str | Path, fmt: str | None = None, *, delimiter: str | None = None,
                 encoding: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"catalogue [{self.path}] does not exist or is not a file",
                              fix="pass the path of a .csv, .jsonl or .parquet catalogue")
        self.format = detect_format(self.path, fmt)
        self.encoding = self._encoding(encoding)
        self.delimiter = self._delimiter(delimiter)
        self.columns: list[str] | None = self._columns()

    def _encoding(self, given: str | None) -> str:
        """The codec to read text with: `given` (checked), else UTF-8 with its BOM
        dropped, or UTF-16 when the file starts with a UTF-16 BOM."""
        if given:
            try:
                name = codecs.lookup(given).name
            except LookupError:
                raise ConfigError(f"unknown encoding [{given}]",
                                  fix="use a Python codec name, e.g. utf-8, cp1252, latin-1, utf-16") from None
            if self.format == "jsonl" and name not in ("utf-8", "utf-8-sig"):
                raise ConfigError(f"--encoding {given}: JSON Lines are UTF-8 by definition",
                                  fix="convert the file to UTF-8, or leave --encoding out")
            if self.format == "parquet":
                raise ConfigError(f"--encoding {given}: Parquet stores its own encoding",
                                  fix="leave --encoding out for a Parquet catalogue")
            return "utf-8-sig" if name == "utf-8" else name
        if self.format == "csv":
            with self.path.open("rb") as f:
                head = f.read(2)
            if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                return "utf-16"
        return "utf-8-sig"

    def _delimiter(self, given: str | None) -> str | None:
        if self.format != "csv":
            if given:
                raise ConfigError(f"--delimiter applies to CSV, not to a {self.format} catalogue",
                                  fix="leave --delimiter out")
            return None
        if given:
            given = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(given, given)
            if len(given) != 1 or given in ('"', "\r", "\n"):
                raise ConfigError(f"--delimiter [{given}] must be one character (not a quote or a line break)",
                                  fix="e.g. --delimiter ';' or --delimiter tab")
            return given
        if self.path.suffix.lower() == ".tsv":
            return "\t"
        with self._open() as f:
            first = f.readline(1 << 20)
        # Count outside quotes: a title in the header could hold a comma.
        outside = "".join(part for i, part in enumerate(first.split('"')) if i % 2 == 0)
        counts = {d: outside.count(d) for d in DELIMITERS}
        best = max(DELIMITERS, key=lambda d: counts[d])
        return best if counts[best] else ","

    def _open(self):
        return self.path.open(newline="", encoding=self.encoding, errors="surrogateescape")

    @property
    def base_dir(self) -> Path:
        """Relative photo paths are relative to the catalogue file."""
        return self.path.resolve().parent

    def _columns(self) -> list[str] | None:
        if self.format == "csv":
            with self._open() as f:
                first = next(self._csv_records(f, 0), None)
            header = first[2] if first is not None else None
            if first is not None and header is None:
                raise ConfigError(f"the header of [{self.path}] cannot be read: {first[3]}",
                                  fix="the first line of a CSV catalogue names its columns")
            if not header or header == [""]:
                raise ConfigError(f"catalogue [{self.path}] is empty: no header line",
                                  fix="the first line of a CSV catalogue names its columns")
            bad = [h for h in header if any(0xDC80 <= ord(c) <= 0xDCFF for c in h)]
            if bad:
                raise ConfigError(f"the header of [{self.path}] is not valid "
                                  f"{'UTF-8' if self.encoding == 'utf-8-sig' else self.encoding}: "
                                  f"{bad!r}", fix="save the catalogue as UTF-8, or name its encoding with "
                                                  "--encoding (e.g. cp1252, latin-1)")
            return [h.strip().lstrip("\ufeff") for h in header]
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(self.path).schema_arrow.names)
        return None

    def sample_keys(self, n: int = 1000) -> tuple[list[str], int]:
        """Keys of the first `n` records (JSONL records may each have other keys) and
        how many records that was: what a column mapping is checked against before
        the run."""
        keys: dict[str, None] = {}
        seen = 0
        for rec in self:
            if seen >= n:
                break
            seen += 1
            if rec.fields is not None:
                keys.update(dict.fromkeys(rec.fields))
        return list(keys), seen

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
        with self._open() as f:
            records = self._csv_records(f, len(header))
            next(records, None)  # the header
            for first, last, row, error in records:
                if row is None:
                    yield RawRecord(first, None, ("record", error))
                    continue
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    span = f" (lines {first}-{last})" if last > first else ""
                    yield RawRecord(first, None, ("record", f"has {len(row)} fields, the header has {len(header)}{span}"))
                    continue
                yield RawRecord(first, dict(zip(header, row)))

    def _csv_records(self, f, ncols: int) -> Iterator[tuple[int, int, list[str] | None, str]]:
        """(first line, last line, row or None, error) for each record of the open
        file. A record that starts with a quote left open (its first physical line has
        an odd number of quote characters) and then runs to the end of the file, past
        MAX_RECORD_LINES, into a CSV error or (with `ncols` known) to the wrong number
        of fields, is one bad record on its first line; the lines it took in are read
        again."""
        lines = enumerate(f, start=1)
        pending: deque[tuple[int, str]] = deque()
        while True:
            taken: list[tuple[int, str]] = []
            end = {"eof": False, "cap": False}

            def feed():
                while True:
                    if len(taken) >= MAX_RECORD_LINES:
                        end["cap"] = True
                        return
                    item = pending.popleft() if pending else next(lines, None)
                    if item is None:
                        end["eof"] = True
                        return
                    taken.append(item)
                    yield item[1]

            reader = csv.reader(feed(), delimiter=self.delimiter or ",", quotechar='"', doublequote=True)
            error = ""
            try:
                row: list[str] | None = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row, error = None, f"malformed CSV ({exc})"
            if not taken:
                return
            first, last = taken[0][0], taken[-1][0]
            open_quote = taken[0][1].count('"') % 2 == 1
            ran_off = end["cap"] or (end["eof"] and "".join(t for _, t in taken).count('"') % 2 == 1)
            bad = row is None or ran_off or (ncols and len(row) != ncols)
            if len(taken) > 1 and open_quote and bad:
                pending.extendleft(reversed(taken[1:]))
                why = ("it runs to the end of the file" if end["eof"] else
                       f"it runs over more than {MAX_RECORD_LINES} lines" if end["cap"] else
                       f"it would run through line {last}")
                yield first, first, None, (f"unclosed quote: the quoted field opened on line {first} is not closed "
                                           f"({why}); the lines after it are read as records of their own")
                continue
            if ran_off:
                yield first, last, None, f"unclosed quote: the quoted field opened on line {first} is never closed"
                continue
            if ncols and open_quote and len(taken) > 2 and self._looks_like_records(taken[1:-1], ncols):
                # A stray quote further down closed it with the right field count by chance.
                yield first, last, None, (f"the quoted field opened on line {first} runs through line {last} and takes "
                                          f"in lines that look like records of their own (lines {first}-{last}); "
                                          f"check for an unclosed quote")
                continue
            if row is None and last > first:
                error += f" (lines {first}-{last})"
            yield first, last, row, error

    def _looks_like_records(self, lines: list[tuple[int, str]], ncols: int) -> bool:
        for _, text in lines:
            if '"' in text:
                continue
            row = text.rstrip("\r\n").split(self.delimiter or ",")
            if len(row) == ncols and row[0].strip():
                return True
        return False

    def _jsonl(self) -> Iterator[RawRecord]:
        with self.path.open("rb") as f:
            for line_no, raw in enumerate(f, start=1):
                if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
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


def open_source(path: str | Path, fmt: str | None = None, *, delimiter: str | None = None,
                encoding: str | None = None) -> Source:
    return Source(path, fmt, delimiter=delimiter, encoding=encoding)
