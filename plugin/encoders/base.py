"""The encoder interface every runtime implements (Triton client, in-process ONNX
Runtime, in-process torch): one method, `encode_batch`; the base class supplies
chunking and the convenience entry points."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..contract import VIEWS
from ..errors import EncodeError


@dataclass(frozen=True)
class ProductInput:
    """What an encoder needs of a product: its id (for error messages), the encoded
    photo bytes (None or b'' when it has no photo) and its title (None or '')."""

    id: str
    image: bytes | None = None
    text: str | None = None

    @property
    def has_image(self) -> bool:
        return bool(self.image)

    @property
    def has_text(self) -> bool:
        return bool(self.text and self.text.strip())


@dataclass
class EncodedBatch:
    """Vectors for a batch, row i for products[i]. A view a product cannot have, and
    every view of a product that failed, is the zero vector; `errors[i]` says why a
    product failed (None when it encoded)."""

    ids: list[str]
    image: np.ndarray
    text: np.ndarray
    fused: np.ndarray
    errors: list[EncodeError | None] = field(default_factory=list)

    def __post_init__(self):
        if not self.errors:
            self.errors = [None] * len(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def view(self, name: str) -> np.ndarray:
        if name not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got [{name}]")
        return getattr(self, name)

    @property
    def ok(self) -> np.ndarray:
        return np.array([e is None for e in self.errors], dtype=bool)

    @staticmethod
    def concat(parts: Sequence["EncodedBatch"], dim: int) -> "EncodedBatch":
        if not parts:
            z = np.zeros((0, dim), dtype=np.float32)
            return EncodedBatch([], z, z.copy(), z.copy(), [])
        return EncodedBatch(
            ids=[i for p in parts for i in p.ids],
            image=np.concatenate([p.image for p in parts]),
            text=np.concatenate([p.text for p in parts]),
            fused=np.concatenate([p.fused for p in parts]),
            errors=[e for p in parts for e in p.errors],
        )


class Encoder:
    """Base class. Subclasses implement `encode_batch` and set `dim`."""

    dim: int
    model_version: str
    colour_dims: int = 0  # the model's last dimensions that carry colour apart (contract.colour_dims)
    max_batch: int = 64

    def encode_batch(self, products: Sequence[ProductInput]) -> EncodedBatch:
        raise NotImplementedError

    def encode(self, products: Iterable[ProductInput], batch_size: int | None = None) -> EncodedBatch:
        bs = batch_size or self.max_batch
        items = list(products)
        parts = [self.encode_batch(items[i : i + bs]) for i in range(0, len(items), bs)]
        return EncodedBatch.concat(parts, self.dim)

    def encode_one(self, product: ProductInput) -> EncodedBatch:
        out = self.encode_batch([product])
        if out.errors[0] is not None:
            raise out.errors[0]
        return out

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
