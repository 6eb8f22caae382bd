"""The OpenAI-compatible HTTP app over one engine: ``/v1/chat/completions``, ``/v1/completions``,
``/v1/models``. Handlers check the request and tokenize the prompt, then submit it to the engine (whose
scheduler decodes up to ``n_slots`` requests together; more wait in its bounded queue, and a full queue is
a 503 with Retry-After) and relay its events, as one JSON response or as server-sent events. A client
that goes away cancels only its own request.

Stopping (:class:`Lifecycle`, which the server in background.py drives on Ctrl-C or SIGTERM): new
requests get a 503, every request in the engine is cancelled, and each one still ends properly -- a stream
with its final chunk (``finish_reason`` "cancelled", ``aspd.error`` saying why) and ``[DONE]``, a whole
response as JSON -- before the server closes its connections."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..engine import Engine
from ..errors import AspdLocalError, ChatTemplateError, ContextOverflowError
from ..events import Done, Queued
from ..params import GenerationParams
from ..scheduler import QueueFullError, Request as EngineRequest
from .content import ContentStream
from .errors import ApiError, error_body
from .schemas import GenerationRequest, parse_chat, parse_completion, parse_json
from .shape import Shaper, finish_reason, sse, summary, usage

# names a client may give instead of the served model's id (as llama.cpp's server accepts any)
ALIASES = ("default",)
SHUTTING_DOWN = "the server is shutting down"

log = logging.getLogger("aspd_local.server")


class Lifecycle:
    """Whether the app still takes requests, and how many HTTP requests it is serving. ``stop()`` (the
    server calls it on the first Ctrl-C or SIGTERM, before it closes any connection): new requests get a
    503 and every request in the engine is cancelled, so each ends with its final event; ``drain()``
    waits until the requests in flight have sent their last byte."""

    def __init__(self, engine: Engine, notify: Callable[[str], None] | None = None):
        self.engine = engine
        self.stopping = False
        self.active = 0  # HTTP requests in flight
        self.notify = notify or log.info  # one line per request the stop cut

    def stop(self) -> None:
        # the flag first: a handler checks it right before it submits (no await between the two), so a
        # request is either refused or already in the engine and cancelled here
        self.stopping = True
        self.engine.cancel()

    async def drain(self, timeout: float, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Wait (up to ``timeout`` s, or until ``give_up()``) for the requests in flight; True once none is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.active and not give_up() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return self.active == 0

    def was_cut(self, result) -> bool:
        """The request ended because the server is stopping."""
        return self.stopping and result is not None and result.finish_reason == "cancelled"

    def cut(self, request_id: str, result) -> None:
        self.notify(f"[serve] stopping: request {request_id} cut after {len(result.tokens)} tokens")

    def refusal(self) -> ApiError:
        return ApiError(f"{SHUTTING_DOWN}; it takes no new requests", 503, code="server_shutting_down",
                        type="server_error", headers={"Connection": "close"})


class _Tracked:
    """ASGI middleware: counts the HTTP requests in flight for :meth:`Lifecycle.drain`. A request the
    server still cancels while stopping (its client stalled past the grace time) ends quietly instead of
    with a traceback."""

    def __init__(self, app, life: Lifecycle):
        self.app, self.life = app, life

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.life.active += 1
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if not self.life.stopping:
                raise
        finally:
            self.life.active -= 1


def model_id_of(engine: Engine) -> str:
    """The id a client names the served model by: the GGUF file's stem."""
    name = os.path.basename(engine.model.path)
    return name[:-5] if name.endswith(".gguf") else name


def create_app(engine: Engine, *, model_id: str | None = None, defaults: GenerationParams | None = None,
               processors: Callable[[], list] | None = None, retry_after_s: int = 2,
               notify: Callable[[str], None] | None = None) -> FastAPI:
    """An app serving ``engine`` (which stays the caller's to close). ``defaults`` fill the fields a
    request leaves out; ``processors`` (a function returning logits processors) apply to every request;
    ``notify`` gets one line for each request a stopping server cuts (default: logged at INFO)."""
    mid = model_id or model_id_of(engine)
    names = (mid, mid + ".gguf", *ALIASES)
    life = Lifecycle(engine, notify)

    @asynccontextmanager
    async def lifespan(app):
        yield
        life.stop()  # (a server other than ours may get here with requests still running)

    app = FastAPI(title="aspd-local", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_Tracked, life=life)
    app.state.lifecycle = life
    app.state.engine, app.state.model_id = engine, mid
    app.state.defaults = defaults or GenerationParams()
    model_obj = {"id": mid, "object": "model", "created": int(os.stat(engine.model.path).st_mtime),
                 "owned_by": "aspd-local"}

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request, e: HTTPException):
        code = "not_found" if e.status_code == 404 else None
        return JSONResponse(error_body(str(e.detail), code=code), status_code=e.status_code)

    @app.get("/health")
    async def health():
        busy = engine.scheduler.busy
        body = {"status": "stopping" if life.stopping else "ok", "model": mid, "idle": busy == 0,
                "slots": engine.config.n_slots, "waiting": engine.scheduler.n_waiting}
        return JSONResponse(body, status_code=503) if life.stopping else body

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_obj]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        if name not in names:
            raise ApiError(f"the model {name!r} is not served here; this server serves {mid!r}", 404,
                           code="model_not_found", param="model")
        return model_obj

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await _complete(request, parse_chat)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await _complete(request, parse_completion)

    async def _complete(request: Request, parse) -> Response:
        if life.stopping:
            raise life.refusal()
        req = parse(parse_json(await request.body()), app.state.defaults)
        if req.model not in names:
            raise ApiError(f"the model {req.model!r} is not served here; this server serves {mid!r} "
                           f"(see GET /v1/models)", code="model_not_found", param="model")
        tokens = await run_in_threadpool(_prompt_tokens, engine, req)
        params = req.params(app.state.defaults)
        if processors is not None:
            params = params.replace(processors=tuple(processors()))
        if life.stopping:  # (it began while the body came in or the prompt was tokenized)
            raise life.refusal()
        try:
            handle = engine.submit(tokens, params)
        except QueueFullError as e:
            raise ApiError(f"the server is busy: {e}", 503, code="server_busy", type="server_error",
                           headers={"Retry-After": str(retry_after_s)}) from None
        except (ValueError, AspdLocalError) as e:
            raise api_error(e) from None
        events = handle.__aiter__()
        shaper = Shaper(req.kind, mid, req.include_usage)
        content = ContentStream()  # stop strings are the engine's: its text ends before the first one
        streaming = False
        try:
            # the first item that is not the queue's notice (an error surfaces here as a status code)
            item = await _next(events, request, skip_queued=True)
            if isinstance(item, Done) and life.was_cut(item.result) and not item.result.tokens:
                life.cut(shaper.id, item.result)
                raise life.refusal()  # stopped before it answered anything: nothing to send but why
            if item is not None and req.stream:
                streaming = True  # the event stream owns the request from here on
                return StreamingResponse(_events(item, events, handle, content, shaper, len(tokens)),
                                         media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            while item is not None and not isinstance(item, Done):
                content.feed(item)
                item = await _next(events, request)
        except Exception as e:
            raise api_error(e) from None
        finally:
            if not streaming:
                handle.cancel()  # a no-op once it finished; else the client went away
                await events.aclose()
        if item is None:
            return Response(status_code=499)  # nobody is listening any more
        content.finish()
        if life.was_cut(item.result):
            life.cut(shaper.id, item.result)
            return JSONResponse(shaper.response(content.text, "cancelled", usage(len(tokens), item.result),
                                                item.result, error=SHUTTING_DOWN))
        return JSONResponse(shaper.response(content.text, finish_reason(item.result, False),
                                            usage(len(tokens), item.result), item.result))

    async def _events(item, events, handle: EngineRequest, content: ContentStream, shaper: Shaper, n_prompt: int):
        # the events that are already there go out in one write (a step of a block makes one per branch)
        buf = [sse(shaper.chunk(first=True))] if shaper.kind == "chat" else []
        try:
            while item is not None:
                if isinstance(item, Done):
                    for piece in content.finish():
                        buf.append(sse(shaper.chunk(piece.content, piece.aspd)))
                    done = {"type": "done", **summary(item.result)}
                    finish = finish_reason(item.result, False)
                    if life.was_cut(item.result):  # the server is stopping: say so, then end as usual
                        life.cut(shaper.id, item.result)
                        finish, done["error"] = "cancelled", SHUTTING_DOWN
                    buf.append(sse(shaper.chunk(finish=finish, aspd=done)))
                    if shaper.include_usage:
                        buf.append(sse(shaper.usage_chunk(usage(n_prompt, item.result))))
                    buf.append(sse("[DONE]"))
                    yield b"".join(buf)
                    return
                for piece in content.feed(item):
                    buf.append(sse(shaper.chunk(piece.content, piece.aspd)))
                if buf and not handle.has_pending:
                    yield b"".join(buf)
                    buf = []
                try:
                    item = await anext(events, None)
                except Exception as e:
                    buf.append(sse(api_error(e).body()))
                    yield b"".join(buf)
                    return
            if buf:
                yield b"".join(buf)
        finally:  # done, or the client disconnected (or the server is stopping): stop the generation
            handle.cancel()
            await events.aclose()

    return app


async def _next(events, request: Request, poll_s: float = 0.5, skip_queued: bool = False):
    """The request's next event; None once it ended without one, or once the client disconnected
    (checked every ``poll_s``, however fast events come)."""
    loop = asyncio.get_running_loop()
    check_at = getattr(request.state, "check_at", 0.0)
    nxt = asyncio.ensure_future(anext(events, None))
    try:
        while True:
            if loop.time() >= check_at:
                if await request.is_disconnected():
                    return None
                check_at = request.state.check_at = loop.time() + poll_s
            done, _ = await asyncio.wait({nxt}, timeout=max(0.0, check_at - loop.time()))
            if done:
                item = nxt.result()
                if skip_queued and isinstance(item, Queued):
                    nxt = asyncio.ensure_future(anext(events, None))
                    continue
                return item
    finally:
        if not nxt.done():
            nxt.cancel()
            try:
                await nxt
            except BaseException:
                pass


def _prompt_tokens(engine: Engine, req: GenerationRequest) -> list[int]:
    try:
        if req.kind == "chat":
            tokens = engine.prompt_tokens(req.messages)
        else:
            tokens = engine.prompt_tokens(req.prompt, chat=False)
    except ChatTemplateError as e:
        raise ApiError(str(e), param="messages") from None
    n_ctx = engine.ctx.n_ctx
    if len(tokens) + 1 > n_ctx:
        what = "messages" if req.kind == "chat" else "prompt"
        raise ApiError(f"this model's context holds {n_ctx} tokens, but your {what} came to {len(tokens)} tokens "
                       f"(and one more is needed to answer); shorten it", code="context_length_exceeded", param=what)
    return tokens


def api_error(e: BaseException) -> ApiError:
    """The client's view of an error raised while serving a request."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, ContextOverflowError):
        return ApiError(str(e), code="context_length_exceeded")
    if isinstance(e, ValueError):  # a sampling setting the engine refused
        return ApiError(str(e))
    if isinstance(e, QueueFullError):
        return ApiError(str(e), 503, code="server_busy")
    if isinstance(e, AspdLocalError):
        return ApiError(str(e), 500)
    return ApiError(f"internal error: {type(e).__name__}: {e}", 500)
