"""Request bodies of ``/v1/chat/completions`` and ``/v1/completions``, checked field by field.

Every problem becomes one :class:`ApiError` (400) naming the field. Fields this server cannot honour
(``n`` > 1, logprobs, tools, penalties other than 0, ...) are refused rather than silently ignored;
fields that change nothing here (``user``, ``metadata``, ``store``, ...) are accepted and ignored.
Extensions: ``aspd_mode`` ("ar", "sequential", "parallel"), ``speculate`` (true/false or "suffix"/"none"),
``top_k``, ``min_p``, ``repeat_penalty``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..params import Mode
from ..params import GenerationParams
from .errors import ApiError

MAX_STOP = 4


# What a request gets for the fields it leaves out (the ``serve`` command sets them from its options).
Defaults = GenerationParams


@dataclass
class GenerationRequest:
    """A checked request: what to feed the engine and how to answer."""

    kind: str  # "chat" or "text"
    model: str
    messages: list[dict] | None = None  # chat
    prompt: str | None = None  # text completion
    max_tokens: int = 512
    sampling: dict = field(default_factory=dict)  # SamplingParams fields
    mode: str = "parallel"
    speculate: str | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False

    def params(self, defaults: GenerationParams) -> GenerationParams:
        """The engine's parameters: ``defaults`` with what the request set."""
        return defaults.replace(mode=self.mode, max_tokens=self.max_tokens, speculate=self.speculate,
                                stop=tuple(self.stop), **self.sampling)


def parse_json(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(f"the request body is not valid JSON ({e})", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object")
    return body


def parse_chat(body: dict, defaults: Defaults) -> GenerationRequest:
    req = _common(body, defaults, "chat")
    if body.get("max_completion_tokens") is not None:
        req.max_tokens = _int(body, "max_completion_tokens", lo=1)
    req.messages = _messages(body)
    for name in ("tools", "functions"):
        if body.get(name):
            raise _unsupported(name)
    if body.get("tool_choice") not in (None, "none", "auto"):
        raise _unsupported("tool_choice")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise _unsupported("logprobs")
    rf = body.get("response_format")
    if rf is not None and not (isinstance(rf, dict) and rf.get("type") == "text"):
        raise _unsupported("response_format", "only {\"type\": \"text\"} is supported")
    return req


def parse_completion(body: dict, defaults: Defaults) -> GenerationRequest:
    req = _common(body, defaults, "text")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError("'prompt' is required and must be a string (or a list holding one string)", param="prompt")
    req.prompt = prompt
    if body.get("echo"):
        raise _unsupported("echo")
    if body.get("suffix"):
        raise _unsupported("suffix")
    if body.get("logprobs") is not None:
        raise _unsupported("logprobs")
    if body.get("best_of") not in (None, 1):
        raise _unsupported("best_of", "only best_of=1 is supported")
    return req


# -- fields -------------------------------------------------------------------
def _common(body: dict, d: Defaults, kind: str) -> GenerationRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError("'model' is required and must be a string (see GET /v1/models)", param="model")
    if body.get("n") not in (None, 1):
        raise _unsupported("n", "only n=1 is supported")
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise _unsupported(name, "use the extension field 'repeat_penalty' instead")
    if body.get("logit_bias"):
        raise _unsupported("logit_bias")
    sampling = dict(
        temperature=_num(body, "temperature", d.temperature, lo=0.0),
        top_p=_num(body, "top_p", d.top_p, lo=0.0, lo_open=True, hi=1.0),
        top_k=_int(body, "top_k", d.top_k, lo=0),
        min_p=_num(body, "min_p", d.min_p, lo=0.0, hi=1.0, hi_open=True),
        repeat_penalty=_num(body, "repeat_penalty", d.repeat_penalty, lo=0.0, lo_open=True),
        seed=_int(body, "seed", d.seed),
    )
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise ApiError("'stream' must be a boolean", param="stream")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise ApiError("'stream_options' must be an object", param="stream_options")
    include_usage = bool((opts or {}).get("include_usage", False))
    return GenerationRequest(kind=kind, model=model, max_tokens=_int(body, "max_tokens", d.max_tokens, lo=1),
                             sampling=sampling, mode=_mode(body, d.mode), speculate=_speculate(body, d.speculate),
                             stop=_stop(body), stream=bool(stream), include_usage=include_usage)


def _messages(body: dict) -> list[dict]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ApiError("'messages' is required and must be a non-empty list", param="messages")
    out = []
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ApiError(f"{where} must be an object with 'role' and 'content'", param=where)
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise ApiError(f"{where}.role must be 'system', 'developer', 'user' or 'assistant', got {role!r}",
                           param=f"{where}.role")
        out.append({"role": role, "content": _content(m.get("content"), f"{where}.content")})
    return out


def _content(c, where: str) -> str:
    if isinstance(c, str):
        return c
    if isinstance(c, list):  # content parts: text only
        texts = []
        for part in c:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise ApiError(f"{where}: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported",
                               param=where)
            texts.append(part["text"])
        return "".join(texts)
    raise ApiError(f"{where} must be a string or a list of text parts", param=where)


def _stop(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise ApiError("'stop' must be a non-empty string or a list of them", param="stop")
    if len(stop) > MAX_STOP:
        raise ApiError(f"'stop' takes at most {MAX_STOP} strings", param="stop")
    return list(stop)


def _mode(body: dict, default: str) -> str:
    mode = body.get("aspd_mode", default)
    modes = [m.value for m in Mode]
    if mode is None:
        return default
    if mode not in modes:
        raise ApiError(f"'aspd_mode' must be one of {', '.join(modes)}, got {mode!r}", param="aspd_mode")
    return mode


def _speculate(body: dict, default: str | None) -> str | None:
    s = body.get("speculate")
    if s is None:
        return default
    if s is True or s == "suffix":
        return "suffix"
    if s is False or s == "none":
        return "none"
    raise ApiError("'speculate' must be true, false, \"suffix\" or \"none\"", param="speculate")


def _num(body, name, default, *, lo=None, hi=None, lo_open=False, hi_open=False):
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ApiError(f"'{name}' must be a number", param=name)
    if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and (v > hi or (hi_open and v == hi))):
        lo_s = "" if lo is None else ("(" if lo_open else "[") + f"{lo}, "
        hi_s = "inf)" if hi is None else f"{hi}" + (")" if hi_open else "]")
        raise ApiError(f"'{name}' must be in {lo_s}{hi_s}, got {v}", param=name)
    return float(v)


def _int(body, name, default=None, *, lo=None):
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise ApiError(f"'{name}' must be an integer", param=name)
    if lo is not None and v < lo:
        raise ApiError(f"'{name}' must be >= {lo}, got {v}", param=name)
    return v


def _unsupported(name: str, hint: str = "") -> ApiError:
    return ApiError(f"'{name}' is not supported by this server" + (f" ({hint})" if hint else ""), param=name,
                    code="unsupported_parameter")

