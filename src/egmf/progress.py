"""Progress for long loops: a tqdm bar on a terminal, plain lines in a log file.

A tqdm bar redraws itself with carriage returns, which a log file (``nohup ... > train.log``) keeps as one
endless line. When stderr is not a terminal, :func:`progress` writes a plain line instead at most every
``every`` seconds (and at the end), so a log reads ``train: 40/120 step [1m03s] loss=0.912``.

    bar = progress(total=120, desc="train", unit="step")
    bar.update(1); bar.set_postfix(loss="0.912"); bar.close()
    for batch in progress(batches, desc="predict", unit="batch"): ...
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, disable: bool = False, leave: bool = True, every: float = 30.0, stream=None):
    """A tqdm bar when ``stream`` (default stderr) is a terminal, else a :class:`LineProgress`."""
    stream = stream or sys.stderr
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if hasattr(stream, "isatty") and stream.isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, leave=leave,
                    file=stream)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                        every=every, stream=stream)


class LineProgress:
    """The part of tqdm's interface EGMF uses, writing one plain line per ``every`` seconds."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, disable: bool = False, every: float = 30.0, stream=None):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.disable, self.every = initial, disable, every
        self.stream = stream or sys.stderr
        self.postfix = ""
        self.started = self.last = time.monotonic()
        self.closed = False

    def __iter__(self):
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._write()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._write()

    def _write(self) -> None:
        if self.disable:
            return
        secs = int(time.monotonic() - self.started)
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        line = f"{self.desc}: {count} {self.unit} [{secs // 60}m{secs % 60:02d}s]"
        print(line + (f" {self.postfix}" if self.postfix else ""), file=self.stream, flush=True)
