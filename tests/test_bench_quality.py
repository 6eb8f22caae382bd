"""The bench's quality and adaptivity figures, against values worked out by hand."""

import pytest

from aspd_local.bench.quality import adaptivity, loops, rouge_l


def test_rouge_l_against_hand_computed_lcs():
    # LCS of "the cat sat on the mat" and "the cat lay on a mat" = the cat on mat (4 words)
    p, r = 4 / 6, 4 / 6
    assert rouge_l("the cat sat on the mat", "the cat lay on a mat") == pytest.approx(2 * p * r / (p + r))
    assert rouge_l("a b c", "a b c") == 1.0
    assert rouge_l("a b c", "x y z") == 0.0
    # different lengths: LCS 2 of 2 and of 4 words
    assert rouge_l("a b", "a x b y") == pytest.approx(2 * (2 / 4) * 1.0 / (2 / 4 + 1.0))
    assert rouge_l("", "") == 1.0 and rouge_l("", "a") == 0.0


def test_adaptivity_groups_serial_and_list_categories():
    rows = [{"mode": "parallel", "category": c, "blocks": b} for c, b in
            [("list", 1), ("list", 0), ("steps", 2), ("serial_fact", 0), ("serial_math", 1)]]
    rows.append({"mode": "ar", "category": "list", "blocks": 0})  # other modes are not counted
    a = adaptivity(rows)
    assert a["list_style"] == {"prompts": 3, "opened": 2, "share": round(2 / 3, 4)}
    assert a["serial"] == {"prompts": 2, "opened": 1, "share": 0.5}
    assert a["per_category"]["list"]["opened"] == 1


def test_loop_detection_flags_repeated_lines_only():
    assert loops("Compare books and movies.", "Books:\n\n" + "Books are books.\n\n" * 8)
    assert not loops("List three fruits.", "- **Apple**: red and sweet.\n- **Pear**: soft.\n- **Plum**: dark.\n")


class _RecordingReference:
    """A reference 'model' whose log-probabilities are fixed per answer text, and that records the chat
    messages each answer was judged after."""

    def __init__(self, per_token: dict[str, float]):
        self.per_token, self.contexts, self._pending = per_token, [], None

    def tokenize(self, text):
        self._pending = text
        return list(range(len(text.split())))

    def prompt_tokens(self, messages):
        self.contexts.append(messages)
        return [1]

    def score(self, prefix, toks, keep_prefix=True):
        return [self.per_token[self._pending]] * len(toks)


def test_quality_judges_give_the_reference_their_own_context():
    from aspd_local.bench.quality import quality
    from aspd_local.data.fewshot import messages_for

    prompts = [{"id": "a", "prompt": "List two fruits.", "category": "list"},
               {"id": "b", "prompt": "What is 2+2?", "category": "serial_math"}]
    results = [{"id": "a", "mode": "parallel", "text": "- apple\n- pear", "blocks": 1},
               {"id": "a", "mode": "ar", "text": "* apple * pear", "blocks": 0},
               {"id": "b", "mode": "parallel", "text": "4.", "blocks": 0},
               {"id": "b", "mode": "ar", "text": "4.", "blocks": 0}]
    ref = _RecordingReference({"- apple\n- pear": -1.1, "* apple * pear": -1.0, "4.": -0.5})
    q = quality(results, prompts, ref, judge="chat")
    assert ref.contexts[0] == [{"role": "user", "content": "List two fruits."}]
    assert q["judge"] == "chat"
    # with a block: -1.1 vs -1.0 -> 10% lower; all: means -0.8 vs -0.75
    assert q["prompts_with_blocks"]["relative_drop"] == pytest.approx(0.1)
    assert q["all"]["relative_drop"] == pytest.approx((0.8 - 0.75) / 0.75, abs=1e-4)
    assert q["per_category"]["serial_math"]["relative_drop"] == 0.0

    ref.contexts.clear()
    quality(results, prompts, ref, judge="fewshot")
    assert ref.contexts[0] == messages_for("List two fruits.")
    assert ref.contexts[0][-1] == {"role": "user", "content": "List two fruits."} and len(ref.contexts[0]) > 1
    with pytest.raises(ValueError, match="unknown judge"):
        quality(results, prompts, ref, judge="gpt")


def test_scoring_without_keeping_the_prefix_scores_equal_texts_equally(f16_engine):
    """The judge scores both answers of a prompt after the same decode of the prompt: the same text gets
    the same log-probabilities whatever was scored before it, and the cache goes back to what it held."""
    e = f16_engine
    prefix = e.prompt_tokens("Name two fruits.")
    a, b = e.tokenize("Apples and pears."), e.tokenize("- **Apple**: red.\n- **Pear**: green and soft.\n")
    e.score(e.prompt_tokens("Something else first."), e.tokenize("ok"))  # some unrelated cache state
    before = e.cached_tokens()
    first = e.score(prefix, a, keep_prefix=False)
    assert e.cached_tokens() == before
    e.score(prefix, b, keep_prefix=False)
    assert e.score(prefix, a, keep_prefix=False) == first
    assert e.check_cache() == []
    kept = e.score(prefix, a)  # the default keeps the prefix cached
    assert e.cached_tokens()[0] == prefix and kept == pytest.approx(first, abs=0.05)
