"""Ingest checkpoints: where an interrupted ingest picks up.

Correctness does not depend on the checkpoint: rows are upserted by id and skipped by
content hash, so replaying any part of a catalogue converges on the same collection.
The checkpoint makes the replay cheap (no photo downloads and hash look-ups for what
is done) and keeps the report and the dead-letter file those of one clean run.

It records `next_line`: every record on an earlier line is in Milvus or in the
dead-letter file. The writer advances it only after the batch's upsert has returned
(Milvus has it in its write-ahead log) and its dead letters are written, and saves it
atomically (write, fsync, rename), so a SIGKILL at any moment leaves either the old
or the new checkpoint. The dead-letter file is cut back to the length recorded with
it, dropping entries of a batch that was written but not checkpointed.

A checkpoint belongs to one job: catalogue path, collection, model version, column
mapping and limit. If the catalogue file changed (size or mtime), it is ignored.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from samestyle.errors import StoreError

log = logging.getLogger(__name__)
FORMAT = 1


@dataclass
class Checkpoint:
    path: Path
    job: dict
    stamp: dict  # size and mtime of the catalogue when the job started
    next_line: int = 0
    counts: dict = field(default_factory=dict)
    reasons: dict = field(default_factory=dict)
    dead_letter_offset: int = 0
    resumed: bool = False
    _lock_fd: int | None = None

    @staticmethod
    def job_key(job: dict) -> str:
        return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def open(cls, directory: str | Path, catalogue: str | Path, *, collection: str, model_version: str,
             columns: str, limit: int | None) -> "Checkpoint":
        """The job's checkpoint (resumed when valid, else fresh), locked for this
        process so two ingests of one job cannot interleave."""
        cat = Path(catalogue).resolve()
        job = {"format": FORMAT, "catalogue": str(cat), "collection": collection, "model_version": model_version,
               "columns": columns, "limit": limit}
        st = cat.stat()
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        ck = cls(d / f"{cls.job_key(job)}.json", job, stamp)
        ck._lock()
        try:
            saved = json.loads(ck.path.read_text())
        except FileNotFoundError:
            return ck
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable checkpoint %s (%s)", ck.path, exc)
            return ck
        if saved.get("job") != job or saved.get("stamp") != stamp:
            log.info("catalogue changed since checkpoint %s; starting over", ck.path)
            return ck
        ck.next_line = int(saved.get("next_line", 0))
        ck.counts = dict(saved.get("counts", {}))
        ck.reasons = dict(saved.get("reasons", {}))
        ck.dead_letter_offset = int(saved.get("dead_letter_offset", 0))
        ck.resumed = ck.next_line > 0
        return ck

    def _lock(self) -> None:
        fd = os.open(str(self.path) + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"another ingest of this catalogue into [{self.job['collection']}] is running",
                             fix="wait for it to finish (the lock is released when it exits, even if killed)",
                             lock=str(self.path) + ".lock") from None
        self._lock_fd = fd

    def save(self) -> None:
        doc = {"job": self.job, "stamp": self.stamp, "next_line": self.next_line, "counts": self.counts,
               "reasons": self.reasons, "dead_letter_offset": self.dead_letter_offset}
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def clear(self) -> None:
        """The job finished: the next run starts from the top (and skips by hash)."""
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_lock_fd", None)
        d["path"] = str(self.path)
        return d
