"""Progress bars for long work, drawn as samestyle.output's progress mode says: a tqdm
bar on a terminal, one plain line every LINE_INTERVAL_S seconds in a log (lines), or
nothing (off). Kept apart from samestyle.output because tqdm costs ~45 ms to import and
`samestyle --help` imports output."""

from __future__ import annotations

import sys

from tqdm import tqdm

from .output import progress_mode

LINE_INTERVAL_S = 60.0


class _Lines:
    """tqdm's file in lines mode: each refresh becomes a line of its own (tqdm would
    overwrite one line with carriage returns, which a log file keeps as one long line)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, s: str) -> None:
        s = s.replace("\r", "").strip()
        if s:
            self.stream.write(s + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, *, enabled: bool = True, **kw) -> tqdm:
    """tqdm(iterable, **kw) on stderr in the current progress mode; `enabled=False`
    (the caller's own switch, e.g. a library function's `progress` argument) turns it off."""
    mode = progress_mode() if enabled else "off"
    if mode == "lines":
        kw.update(file=_Lines(sys.stderr), mininterval=LINE_INTERVAL_S, maxinterval=LINE_INTERVAL_S * 10,
                  ascii=True, ncols=100, dynamic_ncols=False)
    else:
        kw.update(file=sys.stderr, disable=mode == "off")
    return tqdm(iterable, **kw)
