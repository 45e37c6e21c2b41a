"""The ad routes' fast lane: a well-formed ``POST /v1/decide`` or ``/openrtb/2.6/bid`` goes from the body bytes
straight to its handler, without FastAPI's routing, dependency solving and two-step body validation.

Those layers cost more than the rest of the HTTP work of a decision: FastAPI tries the routes in order (the
management and console routes come first), solves the endpoint's dependencies, decodes the JSON with ``json.loads``
and then validates the Python objects; here one ``model_validate_json`` (pydantic-core, from the bytes) does both.
Anything else takes the ordinary route, unchanged: other paths and methods, bodies that are not declared JSON, and
every body that fails validation — FastAPI then words the 422 exactly as the contract says (the body, already
read, is handed on). Handlers are the routes' own functions, so both lanes answer alike, and exceptions go
through the app's exception handlers as they would on the ordinary route. The handler runs right here, on the event
loop (the guard has already let the requests read with this one check in, and shed it if its turn came too late).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ValidationError

from adpilot.serve.guard import ASGIApp, Message, Receive, Scope, Send

Handler = Callable[[Any, Request], Response]


class AdFastPath:
    """ASGI middleware serving ``routes`` (path -> (body model, handler)) of ``app`` on their fast lane."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI,
                 routes: dict[str, tuple[type[BaseModel], Handler]]) -> None:
        self.app, self.fastapi_app, self.routes = app, fastapi_app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None or not _declared_json(scope["headers"]):
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except HTTPException as error:  # the guard's body limit, past it mid-stream: FastAPI answers it
            await self.app(scope, _failing(error), send)
            return
        if body is None:  # the client went away
            return
        model, handler = route
        try:
            parsed = model.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body), send)
            return
        request = Request(scope, receive)
        try:
            response = handler(parsed, request)
        except Exception as error:
            answer = self._handler_for(error)
            if answer is None:
                raise
            response = await answer(request, error)
        await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})

    def _handler_for(self, error: Exception) -> Callable[..., Any] | None:
        """The app's exception handler for ``error``'s class (nearest base first), as Starlette would pick it."""
        handlers = self.fastapi_app.exception_handlers
        return next((handlers[k] for k in type(error).__mro__ if k in handlers), None)


def _declared_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """FastAPI's rule for reading a body as JSON (with its default ``strict_content_type``): Content-Type
    ``application/json`` or ``application/*+json``; a body without one is not JSON."""
    kind = next((v for k, v in headers if k == b"content-type"), None)
    if kind is None:
        return False
    mime = kind.split(b";", 1)[0].strip().lower()
    return mime == b"application/json" or (mime.startswith(b"application/") and mime.endswith(b"+json"))


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or ``None`` when the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A ``receive`` that hands on an already-read body, then reports the client gone."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _failing(error: HTTPException) -> Receive:
    async def receive() -> Message:
        raise error

    return receive
