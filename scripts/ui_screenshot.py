"""Screenshot of the chat page with a parallel block in flight (docs/ui-branches.png), on the default
model with nothing forced: ``.venv/bin/python scripts/ui_screenshot.py [OUT.png] [PROMPT]``.
Needs Debian's chromium (/usr/bin/chromium) and Playwright."""

import socket
import sys

from playwright.sync_api import sync_playwright

from aspd_local import Engine
from aspd_local.models import default_model_path
from aspd_local.ui import build_app, launch

OUT = sys.argv[1] if len(sys.argv) > 1 else "docs/ui-branches.png"
PROMPT = sys.argv[2] if len(sys.argv) > 2 else "What are the pros and cons of remote work?"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    engine = Engine(str(default_model_path(print)), n_threads=1, speculate="none", suffix_cache=False)
    demo = build_app(engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = launch(demo, port=port, block=False, quiet=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(url)
            page.fill("#aspd-input textarea", PROMPT)
            page.click("#aspd-send")
            page.wait_for_function(
                "() => { const ps = [...document.querySelectorAll('.aspd-branch')]; return ps.length >= 2 && "
                "ps.every(p => p.querySelector('.aspd-branch-text').textContent.length >= 28); }", timeout=300_000)
            page.screenshot(path=OUT)
            page.wait_for_function("() => document.querySelector('#aspd-stats').dataset.state === 'final'",
                                   timeout=300_000)
            browser.close()
    finally:
        demo.close()
        engine.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
