"""The CLI's client of a running `samestyle serve`: a search sent to its HTTP API
(POST /v1/search) instead of importing pymilvus and an encoder here. Standard library
only: with `serve` running, `samestyle search` imports neither numpy nor pymilvus."""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.error
import urllib.request

from ..errors import SamestyleError

log = logging.getLogger(__name__)
TIMEOUT_S = 60.0


class RemoteError(SamestyleError):
    """An error the server answered with, in its own words (code, message, fix)."""

    def __init__(self, status: int, body: dict):
        err = dict(body.get("error") or {})
        code = err.pop("code", "server_error")
        message = err.pop("message", f"HTTP {status}")
        fix = err.pop("fix", None)
        err.pop("detail", None)
        super().__init__(message, fix=fix, **err)
        self.code = code
        self.status = status
        self.user_error = 400 <= status < 500


def post(base_url: str, path: str, body: dict, timeout: float = TIMEOUT_S) -> dict:
    """POST JSON; the decoded answer, or RemoteError with the server's error. Connection
    failures raise OSError (urllib.error.URLError)."""
    req = urllib.request.Request(base_url.rstrip("/") + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Accept": "application/json"},
                                 method="POST")
    key = os.environ.get("SAMESTYLE_API_KEY")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {"error": {"code": "server_error", "message": raw[:200].decode("utf-8", "replace")}}
        raise RemoteError(exc.code, answer if isinstance(answer, dict) else {}) from None


def search_remote(stack: dict, settings, *, product_id=None, ids=None, text=None, target="text", image=None,
                  modifier=None, collection=None, options: dict) -> dict | None:
    """The search through the advertised HTTP API; None when that API cannot take it
    (unreachable, or a serve without /v1/search), so the caller searches here."""
    body: dict = {"options": {k: v for k, v in options.items() if v is not None}}
    if collection or settings.collection != "products":
        body["collection"] = collection or settings.collection
    if ids is not None:
        body.update(type="products", ids=ids)
    elif product_id is not None:
        body.update(type="product", id=product_id)
    elif text is not None:
        body.update(type="text", text=text, target=target)
    else:
        with open(image, "rb") as f:
            body.update(type="photo", image_b64=base64.b64encode(f.read()).decode("ascii"))
        if modifier is not None:
            body["modifier"] = modifier
    try:
        return post(stack["http_url"], "/v1/search", body)
    except RemoteError as exc:
        if exc.status == 405 or (exc.status == 404 and exc.message.startswith("no such path")):
            log.info("the running serve has no /v1/search; searching here")
            return None
        raise
    except OSError as exc:
        log.info("the running serve did not answer (%s); searching here", exc)
        return None
