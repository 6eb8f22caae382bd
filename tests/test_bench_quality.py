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
