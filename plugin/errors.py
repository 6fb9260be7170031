"""One exception root. Every error carries a code, whether retrying may help,
whether it was the caller's input, and the fix when one is known."""

from __future__ import annotations


class SamestyleError(Exception):
    code = "samestyle_error"
    retriable = False
    user_error = False

    def __init__(self, message: str, *, fix: str | None = None, **data):
        self.message = message
        self.fix = fix
        self.data = data
        super().__init__(message + (f" (fix: {fix})" if fix else ""))

    def to_dict(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.fix:
            out["fix"] = self.fix
        out.update({k: v for k, v in self.data.items() if v is not None})
        return out


class ConfigError(SamestyleError):
    code = "config_error"
    user_error = True


class CheckpointError(SamestyleError):
    """A missing, damaged or incompatible model checkpoint."""

    code = "checkpoint_error"
    user_error = True


class InputError(SamestyleError):
    """Bad input from the caller: names the record, the field and the reason."""

    code = "invalid_input"
    user_error = True

    def __init__(self, message: str, *, record: str | None = None, field: str | None = None, **kw):
        super().__init__(message, record=record, field=field, **kw)
        self.record = record
        self.field = field


class InputTooLarge(InputError):
    """Input over a size limit (a photo's bytes or pixels): the HTTP API answers 413.
    Same code as any other bad input; the class is what tells it apart."""


class EncodeError(SamestyleError):
    """One product could not be encoded (the rest of its batch can be)."""

    code = "encode_failed"

    def __init__(self, message: str, *, product_id: str | None = None, field: str | None = None,
                 too_large: bool = False, **kw):
        super().__init__(message, product_id=product_id, field=field, **kw)
        self.product_id = product_id
        self.field = field
        self.too_large = too_large  # refused for its size (a photo's bytes or pixels, a title's length)


class ServerUnavailable(SamestyleError):
    """Triton or Milvus did not answer, after all retries."""

    code = "server_unavailable"
    retriable = True


class ServeError(SamestyleError):
    """The local stack could not start (port taken, missing ONNX files...)."""

    code = "serve_error"


class StoreError(SamestyleError):
    code = "store_error"


class SchemaMismatch(StoreError):
    """The collection's dimensions or model version do not match the model."""

    code = "schema_mismatch"
    user_error = True
