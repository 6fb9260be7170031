"""An encoder that starts its server only when something must be encoded.

`samestyle ingest` of an unchanged catalogue encodes nothing (every content hash
matches); with no Triton configured it would still start a local one (~15 s) just to
learn the model version, which the model manifest already names. `LazyEncoder`
answers model_version and dim from the manifest and opens the real encoder on the
first encode call (or any other attribute)."""

from __future__ import annotations

import threading
from typing import Callable

from ..errors import ServeError


class LazyEncoder:
    def __init__(self, open_fn: Callable[[], object], model_version: str, dim: int, max_batch: int = 16,
                 colour_dims: int = 0):
        self._open = open_fn
        self._real = None
        self._lock = threading.Lock()
        self.model_version = model_version
        self.dim = int(dim)
        self.colour_dims = int(colour_dims)
        self._max_batch = max_batch
        self.consts = None  # the contract's preprocessing constants, as a Triton encoder's

    @property
    def started(self) -> bool:
        return self._real is not None

    @property
    def real(self):
        with self._lock:
            if self._real is None:
                self._real = self._open()
                if self._real.model_version != self.model_version:
                    real, self._real = self._real, None
                    real.close()
                    raise ServeError(f"the encoder serves model [{real.model_version}], the manifest names "
                                     f"[{self.model_version}]", fix="re-export (`samestyle export`) or point "
                                                                    "SAMESTYLE_MODEL at the served model")
            return self._real

    @property
    def max_batch(self) -> int:
        return self._real.max_batch if self._real is not None else self._max_batch

    def encode(self, *args, **kw):
        return self.real.encode(*args, **kw)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.real, name)

    def close(self) -> None:
        if self._real is not None:
            self._real.close()
            self._real = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
