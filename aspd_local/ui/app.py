"""The Gradio page: chat, the branch panels of an open block, the statistics strip and the controls.
One engine serves it; answers queue (one at a time, the model switch included)."""

import os
import sys
import time
from collections.abc import Callable, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry

import gradio as gr  # noqa: E402

from ..engine import Engine  # noqa: E402
from ..errors import AspdLocalError
from ..events import BlockEnd, BlockStart, BranchEnd, Done, Queued
from .host import Conversation, EngineHost, Loader, model_label
from .panels import branches_html, stats_html
from .stats import LiveStats
from .theme import CSS, theme
from .view import AnswerView

ENGINE_QUEUE = "engine"  # the one slot shared by everything that uses the engine
REFRESH_S = 0.1  # at most this often a text-only update goes to the page (block events go at once)
MODES = ["parallel", "ar", "sequential"]
CONTROLS = ("mode", "max_tokens", "temperature")  # settings the page has a control for

RequestOptions = Callable[[str], dict]


def build_app(engine: Engine | Loader | EngineHost, models: Sequence[str] = (), *, settings: dict | None = None,
              request_options: RequestOptions | None = None, title: str = "aspd-local"):
    """The page over ``engine``: an Engine, or a loader ``path -> Engine`` (then the first of ``models``
    is loaded now and the model picker can switch between them).

    ``settings``: the controls' first values (``mode``, ``max_tokens``, ``temperature``) and sampling
    options without a control (``top_k``, ``top_p``, ``min_p``, ``repeat_penalty``, ``seed``), passed
    with every request. ``request_options(message)`` adds keyword arguments to a request (tests force
    token scripts through it). Returns the Blocks; start it with ``launch``."""
    host = engine if isinstance(engine, EngineHost) else EngineHost(engine, models)
    extra = request_options or (lambda _text: {})
    settings = dict(settings or {})
    first = {"mode": "parallel", "max_tokens": 512, "temperature": 0.0}
    first.update({k: settings.pop(k) for k in CONTROLS if k in settings})
    if first["mode"] not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {first['mode']!r}")

    def info_md() -> str:
        e = host.engine
        aspd = "ASPD tokens: yes (parallel blocks)" if e.has_aspd else "no ASPD tokens: served serially"
        return (f"**{os.path.basename(host.model)}** · {aspd} · {e.ctx.n_threads} threads"
                + ("" if host.curve else " · no cost curve (speedup not estimated)"))

    def session_of(request) -> str:
        return getattr(request, "session_hash", None) or "local"

    def respond(text, chat, conv, mode, temperature, max_tokens, speculate, request: gr.Request):
        chat = list(chat or [])
        conv = conv or Conversation()
        text = (text or "").strip()
        if not text:
            yield chat, "", gr.skip(), gr.skip(), gr.skip(), conv
            return
        chat += [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        view = AnswerView()
        live = LiveStats(host.curve, host.decode_calls)
        yield chat, "", branches_html(view), stats_html(live.snapshot(), host.curve is not None), "", conv
        kw = dict(mode=mode, max_tokens=int(max_tokens), temperature=float(temperature),
                  speculate="suffix" if speculate else "none")
        kw.update(settings)
        kw.update(extra(text))
        last = 0.0
        try:
            for ev in host.stream(session_of(request), conv, text, **kw):
                if isinstance(ev, Queued):  # every slot is busy with other chats: say so until it starts
                    ahead = f" ({ev.position} ahead)" if ev.position else ""
                    chat[-1] = {"role": "assistant", "content": f"*waiting for a free slot{ahead}...*"}
                    yield chat, gr.skip(), gr.skip(), gr.skip(), gr.skip(), conv
                    continue
                view.apply(ev)
                live.apply(ev)
                now = time.monotonic()
                if isinstance(ev, (BlockStart, BranchEnd, BlockEnd, Done)) or now - last >= REFRESH_S:
                    last = now
                    chat[-1] = {"role": "assistant", "content": view.chat_text()}
                    raw = view.text if view.finished and not view.stopped else ""
                    strip = stats_html(live.snapshot(), host.curve is not None)
                    yield chat, gr.skip(), branches_html(view), strip, raw, conv
        except AspdLocalError as e:
            chat[-1] = {"role": "assistant", "content": f"**error:** {e}"}
            yield chat, gr.skip(), branches_html(None), stats_html(None), "", conv

    def stop(request: gr.Request):
        host.stop(session_of(request))

    def new_chat(request: gr.Request):
        host.stop(session_of(request))
        return [], "", branches_html(None), stats_html(None), "", Conversation()

    def switch(model, request: gr.Request):
        try:
            host.switch(model)
        except (AspdLocalError, OSError) as e:
            gr.Warning(f"could not load {os.path.basename(model)}: {e}")
        return (gr.update(value=host.model, choices=[(model_label(m), m) for m in host.models]), info_md(),
                [], branches_html(None), stats_html(None), "", Conversation())

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        with gr.Row():
            with gr.Column(scale=4):
                gr.Markdown(f"### {title} — ASPD serial-parallel decoding")
                chatbot = gr.Chatbot(elem_id="aspd-chat", height=420, label="chat", feedback_options=None,
                                     buttons=["copy", "copy_all"])
                branches = gr.HTML(branches_html(None), elem_id="aspd-branches-box", js_on_load=None)
                stats = gr.HTML(stats_html(None), elem_id="aspd-stats-box", js_on_load=None)
                with gr.Row():
                    msg = gr.Textbox(elem_id="aspd-input", placeholder="Ask something; try a list-style question",
                                     show_label=False, scale=6, lines=1, max_lines=6)
                    send = gr.Button("Send", elem_id="aspd-send", variant="primary", scale=1, min_width=80)
                    stop_btn = gr.Button("Stop", elem_id="aspd-stop", variant="stop", scale=1, min_width=80)
                    new_btn = gr.Button("New chat", elem_id="aspd-new", scale=1, min_width=80)
                with gr.Accordion("Last answer as text", open=False):
                    raw = gr.Textbox(elem_id="aspd-raw", show_label=False, lines=6, interactive=False,
                                     buttons=["copy"])
            with gr.Column(scale=1, min_width=240):
                model = gr.Dropdown([(model_label(m), m) for m in host.models], value=host.model, label="model",
                                    elem_id="aspd-model", interactive=host.can_switch)
                info = gr.Markdown(info_md(), elem_id="aspd-info")
                mode = gr.Radio(MODES, value=first["mode"], label="mode", elem_id="aspd-mode",
                                info="parallel: the branches of a block decode together; ar: plain decoding; "
                                     "sequential: blocks, branches one after another")
                temperature = gr.Slider(0.0, 2.0, value=first["temperature"], step=0.05,
                                        label="temperature (0 = greedy)", elem_id="aspd-temperature")
                max_tokens = gr.Slider(16, 2048, value=first["max_tokens"], step=16, label="max tokens",
                                       elem_id="aspd-max-tokens")
                speculate = gr.Checkbox(value=host.engine.config.speculate == "suffix", elem_id="aspd-speculate",
                                        label="suffix speculation (where this machine's cost curve says it pays)")
                gr.Markdown("The strip under the chat: tokens/s, tokens per decode call, branches decoding now, "
                            "and the speedup over plain decoding, *estimated* from this machine's measured cost "
                            "per decode call (live estimates while an answer streams, exact counts after).")
        conv = gr.State(None)

        outputs = [chatbot, msg, branches, stats, raw, conv]
        inputs = [msg, chatbot, conv, mode, temperature, max_tokens, speculate]
        # answers of several tabs run at once, as many as the engine has slots (more wait in its queue)
        q = dict(concurrency_limit=host.engine.config.n_slots + host.engine.config.max_queue,
                 concurrency_id=ENGINE_QUEUE)
        sent = [msg.submit(respond, inputs, outputs, show_progress_on=[chatbot], **q),
                send.click(respond, inputs, outputs, show_progress_on=[chatbot], **q)]
        stop_btn.click(stop, None, None, queue=False)
        new_btn.click(new_chat, None, outputs, queue=False, cancels=sent)
        chatbot.clear(new_chat, None, outputs, queue=False, cancels=sent)
        model.change(switch, [model], [model, info, chatbot, branches, stats, raw, conv], concurrency_limit=1)

    demo.queue(default_concurrency_limit=1)
    demo.aspd_host = host  # for callers that want the engine behind the page (tests, the CLI)
    return demo


def launch(demo, host: str = "127.0.0.1", port: int | None = None, block: bool = True, quiet: bool = False):
    """Serve the page (no share link, no server-side rendering, nothing fetched from the internet) and
    return its local URL; ``block``: serve until Ctrl-C, then close."""
    _app, url, _share = demo.launch(server_name=host, server_port=port, share=False, ssr_mode=False,
                                    prevent_thread_lock=True, quiet=True, theme=theme(), css=CSS,
                                    footer_links=[], pwa=False, mcp_server=False)
    if not quiet:
        print(f"aspd-local chat page: {url}" + ("  (Ctrl-C to stop)" if block else ""), file=sys.stderr, flush=True)
    if block:
        try:
            while demo.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            demo.close()
    return url
