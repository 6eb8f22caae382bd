"""The chat page in a real browser (Debian's chromium, headless, driven by Playwright): a list-style
prompt opens a block whose titled branch panels appear side by side and fill in live, then fold into
the answer, which equals the engine's own for the same request; stop ends a long answer at once and the
next prompt completes correctly; new chat starts over; the page fetches nothing from outside this machine.

The base model never opens a block by itself: a token script (aspd_local.bench.script) makes it, with
the ASPD tokens on <unused0..5>. Set ASPD_UI_SCREENSHOT=path to keep the screenshot of a block in flight
(docs/ui-branches.png is made that way)."""

import os
import re
import shutil
import socket

import pytest

from aspd_local import Caps
from aspd_local.bench.script import Script, block_script
from aspd_local.chat import Message
from conftest import make_engine

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser: {CHROMIUM} is not installed "
                                 "(Debian package 'chromium'; test.sh installs it where it may)"),
              pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]  # Gradio's own pandas use

LIST = "List some fruits and some vegetables."
LONG = "Describe the north and the south in great detail."
NEXT = "Now name two colours."
SCRIPTS = {LIST: (["Fruits", "Vegetables"], [16, 10]), LONG: (["North", "South"], [None, None]),
           NEXT: (["Warm", "Cool"], [6, 6])}
KW = dict(mode="parallel", max_tokens=128, temperature=0.0, speculate="none")  # what the page sends
LONG_CAPS = Caps(max_tokens=2000, max_branch_tokens=1000)  # branches that never close: stop ends them

WATCH = """
window.__aspdSeen = [];
new MutationObserver(() => {
  const ps = [...document.querySelectorAll('#aspd-branches .aspd-branch')];
  if (ps.length) window.__aspdSeen.push(ps.map(p => [p.dataset.title, p.dataset.state,
                                                     p.querySelector('.aspd-branch-text').textContent]));
}).observe(document, {subtree: true, childList: true, characterData: true});
"""
PANELS_WITH_TEXT = """n => { const ps = [...document.querySelectorAll('#aspd-branches .aspd-branch')];
  return ps.length >= 2 && ps.every(p => p.dataset.title &&
                                         p.querySelector('.aspd-branch-text').textContent.trim().length >= n); }"""


def _options(engine):
    def request_options(text):
        titles, lens = SCRIPTS[text]
        serial, branches = block_script(engine, titles, lens)
        extra = {"processors": [Script(serial + [engine.model.eos], branches)]}
        if text == LONG:
            extra["caps"] = LONG_CAPS
        return extra
    return request_options


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _letters(s: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", s)


@pytest.fixture(scope="module")
def engine(q4_path):
    e = make_engine(q4_path, n_threads=1)
    yield e
    e.close()


def test_chat_page_in_browser(engine, tmp_path):
    from playwright.sync_api import sync_playwright

    from aspd_local.ui import build_app, launch

    e = engine
    opts = _options(e)
    ref1 = e.generate(LIST, **KW, **opts(LIST))
    assert len(ref1.blocks) == 1 and all(t.strip() for t in ref1.blocks[0].texts)
    history = [Message("user", LIST), Message("assistant", ref1.text, list(ref1.tokens))]
    ref3 = e.session(history=history).send(NEXT, **KW, **opts(NEXT))

    demo = build_app(e, settings={"max_tokens": KW["max_tokens"]}, request_options=opts)
    url = launch(demo, port=_free_port(), block=False, quiet=True).rstrip("/")
    outside = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})

            def route(r):
                u = r.request.url
                if u.startswith(url) or u.startswith(("data:", "blob:")):
                    r.continue_()
                else:  # a CDN font, script or telemetry call: the page must work without them
                    outside.append(u)
                    r.abort()
            page.route("**/*", route)
            page.add_init_script(WATCH)
            page.goto(url)
            page.get_by_text("Last answer as text").click()  # the raw answer below the chat
            bots = page.locator('#aspd-chat [data-testid="bot"]')

            def ask(text):
                page.fill("#aspd-input textarea", text)
                page.click("#aspd-send")

            def wait_answer(n):
                page.wait_for_function(
                    "n => document.querySelectorAll('#aspd-chat [data-testid=\"bot\"]').length === n && "
                    "document.querySelector('#aspd-stats').dataset.state === 'final'", arg=n, timeout=180_000)

            # 1. a list-style prompt: two titled panels appear side by side, fill in live, then fold
            ask(LIST)
            wait_answer(1)
            seen = page.evaluate("window.__aspdSeen")
            titled = [s for s in seen if [t for t, _, _ in s] == ["Fruits", "Vegetables"]]
            assert titled, f"no branch panels seen: {seen[:3]}"
            assert any(all(x.strip() for *_, x in s) for s in titled), "the panels never had text"
            assert len({tuple(len(x) for *_, x in s) for s in titled}) >= 3, "the panels did not fill in live"
            want = [t.lstrip("\n") for t in ref1.blocks[0].texts]
            assert all(w.startswith(x) for s in titled for w, (*_, x) in zip(want, s)), "a panel showed other text"
            assert any(x == w for s in titled for w, (_, st, x) in zip(want, s) if st == "done")
            boxes = page.evaluate("[...document.querySelectorAll('#aspd-branches .aspd-branch')].length")
            assert boxes == 0  # folded
            assert page.input_value("#aspd-raw textarea") == ref1.text
            assert _letters(bots.nth(0).inner_text()) == _letters(ref1.text)
            assert "stop" in page.inner_text("#aspd-stats") and "vs ar (est.)" in page.inner_text("#aspd-stats")

            # 2. a long answer: panels fill side by side (screenshot), stop ends it at once
            ask(LONG)
            page.wait_for_function(PANELS_WITH_TEXT, arg=20, timeout=180_000)
            shot = tmp_path / "ui-branches.png"
            page.screenshot(path=str(shot))
            xs = page.evaluate("[...document.querySelectorAll('.aspd-branch')].map(p => p.getBoundingClientRect().x)")
            assert len(xs) == 2 and xs[0] < xs[1], "the panels are not side by side"
            page.click("#aspd-stop")
            wait_answer(2)
            assert "[stopped]" in bots.nth(1).inner_text()
            n_tokens = int(re.fullmatch(r"(\d+) tokens, cancelled", page.inner_text("#aspd-stat-tail")).group(1))
            assert n_tokens < LONG_CAPS.max_tokens // 2, "stop did not end the answer early"
            assert e.check_cache() == []

            # 3. the next prompt completes correctly: the stopped turn is not part of the conversation
            ask(NEXT)
            wait_answer(3)
            assert page.input_value("#aspd-raw textarea") == ref3.text
            assert _letters(bots.nth(2).inner_text()) == _letters(ref3.text)

            # 4. new chat empties the page (and the conversation: the next answer is a first turn again)
            page.click("#aspd-new")
            page.wait_for_function("() => !document.querySelector('#aspd-chat [data-testid=\"bot\"]') && "
                                   "document.querySelector('#aspd-stats').dataset.state === 'idle'")
            ask(LIST)
            wait_answer(1)
            assert page.input_value("#aspd-raw textarea") == ref1.text
            browser.close()
    finally:
        demo.close()
    assert outside == [], f"the page fetched from outside this machine: {outside}"
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("ASPD_UI_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
