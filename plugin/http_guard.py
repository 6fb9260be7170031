"""What stands between the HTTP API and hostile input (issue #12, item 5).

- `BodyLimit`: an ASGI middleware that reads a request body in chunks and stops at
  the limit, with or without Content-Length (a chunked upload cannot make the process
  hold more than the limit), and refuses JSON nested deeper than MAX_JSON_DEPTH before
  any parser recurses into it.
- `install_error_handlers`: one error shape, {"error": {"code", "message", ...}}, for
  every answer FastAPI or Starlette would otherwise write themselves (404 unknown path,
  405 wrong method, malformed bodies) and a last-resort 500 in the same shape; error
  bodies never carry NaN or unpaired surrogates (which would fail to encode).
- `ERROR_RESPONSES`: the statuses every operation may answer, for the OpenAPI spec.
- `photo_b64`, `read_json`, `validate`: a request's base64 photo, JSON body and typed
  body, each refused with the one error shape (413 over the limit, 422 malformed).
- `secure`: an optional API key (SAMESTYLE_API_KEY: `Authorization: Bearer <key>` or
  `X-API-Key: <key>`; /healthz and /readyz stay open for probes) and CORS
  (SAMESTYLE_CORS_ORIGINS, comma-separated; off when unset).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import os
import re
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse

from . import contract as C
from .errors import InputError, InputTooLarge

log = logging.getLogger(__name__)

# base64 grows a photo by 4/3; the rest of a JSON body is small.
MAX_BODY_BYTES = C.MAX_PHOTO_BYTES * 4 // 3 + 64 * 1024
MAX_JSON_DEPTH = 32  # the deepest valid request (filters) nests 4 levels
OPEN_PATHS = ("/healthz", "/readyz")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str
    field: str | None = None
    fix: str | None = None


class ErrorResponse(BaseModel):
    """Every non-2xx answer."""

    error: ErrorBody


_WHY = {
    400: "bad input: a value out of range, a malformed filter, an undecodable photo (`field` names it)",
    401: "SAMESTYLE_API_KEY is set and the request carries no valid key",
    404: "unknown product id or path, or a collection named in the request that does not exist",
    405: "method not allowed on this path",
    413: "request body or photo over the size limit",
    415: "unsupported content type",
    422: "body does not match the operation's schema",
    500: "internal error (a bug: please report it with the log line)",
    502: "Milvus or Triton answered with an error",
    503: "Milvus or Triton unavailable, or the collection is not loaded; see Retry-After",
    504: "the search took longer than the time limit",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": why} for code, why in _WHY.items()
}


def safe(obj: Any) -> Any:
    """A JSON-encodable copy: non-finite floats become strings, unpaired surrogates
    are escaped, unknown types are str()-ed."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            return obj.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(obj, (bool, int)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {str(safe(k)): safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [safe(v) for v in obj]
    return safe(str(obj))


def error(status: int, code: str, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    body = {"code": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(safe({"error": body}), status_code=status, headers=headers)


def photo_b64(data: str) -> bytes:
    """The photo of a JSON body's base64 field (a data: URI prefix is accepted)."""
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    if len(data) > MAX_BODY_BYTES:
        raise InputTooLarge(f"photo is over the limit of {C.MAX_PHOTO_BYTES} bytes", field="photo")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("image_b64 is not valid base64", field="image_b64") from None
    if len(raw) > C.MAX_PHOTO_BYTES:
        raise InputTooLarge(f"photo is {len(raw)} bytes, over the limit of {C.MAX_PHOTO_BYTES}", field="photo")
    return raw


def validate(model, obj):
    """`obj` as the pydantic `model`; a mismatch is FastAPI's 422, located in the body."""
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


async def read_json(request):
    """The request's body as JSON; anything unparsable is a 422 `json_invalid`."""
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": f"invalid JSON: {exc}",
                                       "input": None}]) from None


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when `body` nests arrays/objects deeper than `limit` (brackets inside
    strings ignored). Regex passes in C, then a loop over the brackets alone (a photo's
    base64 is one string: no loop over its megabytes)."""
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub(b"", body)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class BodyLimit:
    """Pure ASGI: buffer the body up to `max_bytes` (413 past it, whatever the headers
    say), check JSON nesting, then hand the buffered body to the app."""

    def __init__(self, app, max_bytes: int, max_depth: int = MAX_JSON_DEPTH):
        self.app, self.max_bytes, self.max_depth = app, max_bytes, max_depth

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(scope, receive, send, error(
                413, "invalid_input", f"request body is {declared} bytes, over the limit of {self.max_bytes}",
                field="body"))
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            part = msg.get("body", b"")
            size += len(part)
            if size > self.max_bytes:
                return await self._refuse(scope, receive, send, error(
                    413, "invalid_input", f"request body is over the limit of {self.max_bytes} bytes", field="body"))
            chunks.append(part)
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if (ctype == b"application/json" or ctype.endswith(b"+json")) and json_depth_exceeds(body, self.max_depth):
            return await self._refuse(scope, receive, send, error(
                400, "invalid_input", f"JSON body nests deeper than {self.max_depth} levels", field="body"))
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope, receive, send, response):
        # Connection: close, so a client still sending the rest is not read as the next request.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class ApiKey:
    """Pure ASGI: 401 unless the request carries the key (constant-time compare)."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        given = headers.get(b"x-api-key", b"")
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        if not given or not hmac.compare_digest(given, self.key):
            return await error(401, "unauthorized", "missing or wrong API key",
                               headers={"WWW-Authenticate": "Bearer"},
                               fix="send `Authorization: Bearer <key>` or `X-API-Key: <key>`")(scope, receive, send)
        return await self.app(scope, receive, send)


def install_error_handlers(app) -> None:
    """The documented error shape for what FastAPI/Starlette answer themselves."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 400: "invalid_request", 413: "invalid_input"}
        msg = exc.detail if isinstance(exc.detail, str) else json.dumps(safe(exc.detail))
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no such path: {request.url.path}"
        if exc.status_code == 405:
            msg = f"method {request.method} is not allowed on {request.url.path}"
        return error(exc.status_code, codes.get(exc.status_code, "http_error"), msg, headers=exc.headers)

    @app.exception_handler(RecursionError)
    async def _deep(request, exc):
        return error(400, "invalid_input", "request nests too deeply", field="body")

    @app.exception_handler(Exception)
    async def _bug(request, exc):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal_error", f"{type(exc).__name__}: {exc}",
                     fix="this is a bug; the server log has the traceback")


def secure(app, *, api_key: str | None = None, cors_origins: str | None = None) -> None:
    """API key and CORS from the arguments or SAMESTYLE_API_KEY / SAMESTYLE_CORS_ORIGINS."""
    key = api_key if api_key is not None else os.environ.get("SAMESTYLE_API_KEY", "")
    origins = cors_origins if cors_origins is not None else os.environ.get("SAMESTYLE_CORS_ORIGINS", "")
    if key:
        app.add_middleware(ApiKey, key=key)
    allowed = [o.strip() for o in origins.split(",") if o.strip()]
    if allowed:
        # added last, so it runs first: preflights are answered before the key check
        app.add_middleware(CORSMiddleware, allow_origins=allowed, allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"], max_age=600)
