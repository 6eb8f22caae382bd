"""Branch isolation: every branch token's logits from the batched engine equal those of the same branch
decoded alone, token by token, after the same prefix (positions P + 1 + j)."""

import numpy as np

from aspd_local.llama.context import Context, ContextParams
from aspd_local.bench.script import FREE, Script, block_script

# f16 weights: a batch of n and a batch of 1 differ by ~0.01 (docs/format.md section 8); a wrong mask or
# position moves logits by whole units.
TOL = 0.1


def test_batched_branches_match_isolated_decoding(f16_engine):
    e = f16_engine
    titles, lens = ["Apples", "Pears", "Plums", "Figs"], [7, 11, 4, 9]
    serial, branches = block_script(e, titles, lens)
    serial += [e.model.eos]
    script = Script(serial, branches)
    script.record = True
    prompt = e.prompt_tokens("Name four fruits and describe each.")
    r = e.generate(prompt, mode="parallel", max_tokens=200, processors=[script], keep=False)
    assert r.stats.branches == 4
    a = e.aspd
    para = r.tokens.index(a.para_open)
    prefix = prompt + r.tokens[: para + 1]
    P = len(prefix) - 1
    # split the answer's branch tokens (stream order: branch 0, 1, ...)
    spans, cur = [], None
    for t in r.tokens[para + 1:]:
        if t == a.branch_open:
            cur = [t]
        elif cur is not None:
            cur.append(t)
            if t == a.branch_close:
                spans.append(cur)
                cur = None
    assert len(spans) == 4
    engine_logits = {(k[1], n): lg for k, n, lg in script.seen if k is not None}

    ref = Context(e.model, ContextParams(n_ctx=1024, n_seq_max=2))
    try:
        ref.batch.clear()
        for i, t in enumerate(prefix):
            ref.batch.add(t, i, 0, False)
        ref.decode()
        worst = 0.0
        checked = 0
        for k, toks in enumerate(spans):
            ref.seq_rm(0, P + 1, -1)
            plen = 1 + len(e.tokenize(titles[k] + ": "))
            for j, t in enumerate(toks[:-1]):
                ref.batch.clear()
                ref.batch.add(t, P + 1 + j, 0, True)
                ref.decode()
                n = j - plen + 1  # content index sampled from these logits
                if n < 0:
                    continue
                got = engine_logits[(k, n)]
                want = np.array(ref.logits(0))
                assert int(np.argmax(got)) == int(np.argmax(want)), (k, n)
                worst = max(worst, float(np.max(np.abs(got - want))))
                checked += 1
        print(f"branch isolation: {checked} tokens, max abs logit difference {worst:.4f}")
        assert checked == sum(lens) + len(lens)  # every content token and each closing token
        assert worst < TOL
    finally:
        ref.close()


def test_forced_prefix_matches_piecewise_tokenization(f16_engine):
    """The engine forces <|branch|> + tokens(title + separator), as training tokenizes piece by piece."""
    e = f16_engine
    serial, branches = block_script(e, ["Tea", "Coffee"], [3, 3])
    serial += [e.model.eos]
    r = e.generate("Two drinks?", processors=[Script(serial, branches)], keep=False)
    a = e.aspd
    i = r.tokens.index(a.para_open) + 1
    for title in ("Tea", "Coffee"):
        want = [a.branch_open] + e.tokenize(title + a.separator)
        assert r.tokens[i:i + len(want)] == want
        i = r.tokens.index(a.branch_close, i) + 1
