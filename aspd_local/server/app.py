"""The OpenAI-compatible HTTP app over one engine: ``/v1/chat/completions``, ``/v1/completions``,
``/v1/models``. Handlers check the request and tokenize the prompt, then hand the job to the worker
(one generation at a time) and relay what it reports, as one JSON response or as server-sent events."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..engine import Engine
from ..errors import AspdLocalError, ChatTemplateError, ContextOverflowError
from .content import Piece
from .errors import ApiError, error_body
from .schemas import Defaults, GenerationRequest, parse_chat, parse_completion, parse_json
from .shape import Shaper, finish_reason, sse, summary, usage
from .worker import EngineWorker, Failed, Finished, Job


def model_id_of(engine: Engine) -> str:
    """The id a client names the served model by: the GGUF file's stem."""
    name = os.path.basename(engine.model.path)
    return name[:-5] if name.endswith(".gguf") else name


def create_app(engine: Engine, *, model_id: str | None = None, defaults: Defaults | None = None,
               processors: Callable[[], list] | None = None) -> FastAPI:
    """An app serving ``engine`` (which stays the caller's to close). ``defaults`` fill the fields a
    request leaves out; ``processors`` (a function returning logits processors) apply to every request."""
    mid = model_id or model_id_of(engine)
    worker = EngineWorker(engine, processors)

    @asynccontextmanager
    async def lifespan(app):
        yield
        worker.close(timeout=10)

    app = FastAPI(title="aspd-local", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.worker, app.state.model_id = engine, worker, mid
    app.state.defaults = defaults or Defaults()
    model_obj = {"id": mid, "object": "model", "created": int(os.stat(engine.model.path).st_mtime),
                 "owned_by": "aspd-local"}

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request, e: HTTPException):
        code = "not_found" if e.status_code == 404 else None
        return JSONResponse(error_body(str(e.detail), code=code), status_code=e.status_code)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": mid, "idle": worker.idle}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_obj]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        if name not in (mid, mid + ".gguf"):
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
        req = parse(parse_json(await request.body()), app.state.defaults)
        if req.model not in (mid, mid + ".gguf"):
            raise ApiError(f"the model {req.model!r} is not served here; this server serves {mid!r} "
                           f"(see GET /v1/models)", code="model_not_found", param="model")
        tokens = await run_in_threadpool(_prompt_tokens, engine, req)
        inbox = Inbox()
        job = Job(tokens, req.engine_kwargs(), inbox.sink(), req.stop)
        worker.submit(job)
        shaper = Shaper(req.kind, mid, req.include_usage)
        streaming = finished = False
        try:
            item = await inbox.next(request)  # the request waits here for its turn on the engine
            if item is not None and not isinstance(item, Failed) and req.stream:
                streaming = True  # the event stream owns the job from here on
                return StreamingResponse(_events(item, inbox, job, shaper, len(tokens)),
                                         media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            while item is not None and not isinstance(item, (Finished, Failed)):
                item = await inbox.next(request)
            finished = item is not None
        finally:
            if not streaming:
                inbox.close()
                if not finished:  # the client went away (or the server is stopping): stop the generation
                    worker.cancel(job)
        if isinstance(item, Failed):
            raise api_error(item.error)
        if item is None:
            return Response(status_code=499)  # nobody is listening any more
        return JSONResponse(shaper.response(item.content, finish_reason(item.result, item.stopped),
                                            usage(len(tokens), item.result), item.result))

    async def _events(item, inbox: Inbox, job: Job, shaper: Shaper, n_prompt: int):
        done = False
        try:
            if shaper.kind == "chat":
                yield sse(shaper.chunk(first=True))
            while True:
                if isinstance(item, Piece):
                    yield sse(shaper.chunk(item.content, item.aspd))
                elif isinstance(item, Finished):
                    yield sse(shaper.chunk(finish=finish_reason(item.result, item.stopped),
                                           aspd={"type": "done", **summary(item.result)}))
                    if shaper.include_usage:
                        yield sse(shaper.usage_chunk(usage(n_prompt, item.result)))
                    yield sse("[DONE]")
                    done = True
                    return
                elif isinstance(item, Failed):
                    yield sse(api_error(item.error).body())
                    done = True
                    return
                item = await inbox.next()
        finally:
            if not done:  # the client disconnected (or the server is stopping): stop the generation
                worker.cancel(job)
            inbox.close()

    return app


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
    if isinstance(e, AspdLocalError):
        return ApiError(str(e), 500)
    return ApiError(f"internal error: {type(e).__name__}: {e}", 500)


class Inbox:
    """What the worker thread reports for one request, read from the event loop."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self._get: asyncio.Future | None = None
        self._check_at = 0.0  # when to look for a disconnected client next

    def sink(self) -> Callable[[object], None]:
        loop, put = self.loop, self.queue.put_nowait

        def send(item) -> None:  # called from the worker thread
            try:
                loop.call_soon_threadsafe(put, item)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                pass
        return send

    async def next(self, request: Request | None = None, poll_s: float = 0.5):
        """The next item; with ``request``, None once its client has disconnected (checked every ``poll_s``)."""
        loop = asyncio.get_running_loop()
        while True:
            if request is not None and loop.time() >= self._check_at:
                if await request.is_disconnected():
                    return None
                self._check_at = loop.time() + poll_s
            if self._get is None:
                self._get = asyncio.ensure_future(self.queue.get())
            timeout = None if request is None else max(0.0, self._check_at - loop.time())
            done, _ = await asyncio.wait({self._get}, timeout=timeout)
            if done:
                fut, self._get = self._get, None
                return fut.result()

    def close(self) -> None:
        if self._get is not None:
            self._get.cancel()
            self._get = None
