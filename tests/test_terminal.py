"""The terminal chat (``python -m aspd_local run``) driven through a pseudo-terminal: it prompts, answers
with the fine-tuned default model, shows one live line per branch while a block is open (then folds them
into the answer), prints statistics with ``--stats``, and exits cleanly on Ctrl-D."""

import json
import os
import re
import subprocess
import sys

import pexpect
import pytest

from aspd_local.models import default_model_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUESTION = "List three colours."  # the fine-tuned model answers this with a parallel block
# room for the lead text, the titles and every branch to close: a tighter cap can end the block before its branches write anything
ARGS = ["--max-tokens", "96", "--threads", "1", "--speculate", "none"]


@pytest.fixture(scope="module")
def model():
    return str(default_model_path(progress=lambda m: print(m, file=sys.stderr)))


def _env(tmp_path):
    return dict(os.environ, ASPD_LOCAL_CACHE=str(tmp_path))  # no suffix cache or cost curve from the user's


def test_chat_in_a_terminal(model, tmp_path):
    # the same question one-shot, as JSON events: the answer the chat must show
    p = subprocess.run([sys.executable, "-m", "aspd_local", "run", model, "--prompt", QUESTION, "--json", *ARGS],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env(tmp_path))
    assert p.returncode == 0, p.stderr
    done = json.loads(p.stdout.splitlines()[-1])
    assert done["blocks"], f"the default model no longer opens a block for {QUESTION!r}: pick another question"
    titles = done["blocks"][0]["titles"]
    assert len(titles) >= 2

    child = pexpect.spawn(sys.executable, ["-m", "aspd_local", "run", model, "--stats", *ARGS], cwd=ROOT,
                          env=_env(tmp_path), encoding="utf-8", timeout=300, dimensions=(40, 120))
    try:
        child.expect_exact("\r\n> ")
        child.sendline(QUESTION)
        child.expect(r"\[parallel\] (\d+) tokens .*\(([\d.]+) tok/s\), \d+ decode calls \(([\d.]+) tok/call\), "
                     r"(\d+) blocks, (\d+) branches")
        shown = child.before
        tokens, _, per_call, blocks, branches = child.match.groups()
        assert int(tokens) == done["stats"]["tokens"]
        assert (int(blocks), int(branches)) == (done["stats"]["blocks"], done["stats"]["branches"])
        assert float(per_call) > 1  # branches decoded together: more than one token per decode call

        # one line per branch, redrawn in place as it fills ("…") and when it closes ("✓")
        lines = re.findall(r"\r\x1b\[2K  ([…✓]) \[([^\]\r\n]+)\] ([^\r\n]*)\r\n", shown)
        for title in titles:
            states = [(mark, body) for mark, t, body in lines if t == title]
            assert states and states[0][0] == "…" and states[-1][0] == "✓", title
            assert len({body for _, body in states}) > 1, f"the line of {title!r} never filled in"
        # when the block joins, the lines give way to the branch texts, in title order
        fold = f"\x1b[{len(titles)}A\r\x1b[J"
        assert fold in shown
        after = shown.split(fold)[-1]
        assert after.startswith("".join(done["blocks"][0]["texts"]).replace("\n", "\r\n"))
        lead = done["text"].split(done["blocks"][0]["texts"][0])[0]
        assert lead.replace("\n", "\r\n") in shown.split(QUESTION)[-1]

        child.expect_exact("\r\n> ")  # ready for the next message
        child.sendeof()  # Ctrl-D
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0 and child.signalstatus is None
