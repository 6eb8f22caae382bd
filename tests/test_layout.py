"""The ASPD layout rules (docs/format.md sections 2-4), token-level, no model needed."""

import pytest

from aspd_local.aspd.layout import LayoutError, layout_of, render_tokens
from aspd_local.aspd.tokens import AspdTokens
from aspd_local.errors import AspdFormatError

A = AspdTokens(1, 2, 3, 4, 5, 6)
TO, TC, PO, PC, BO, BC = A.ids


def test_positions_follow_max_para():
    # s s TO t TC TO t TC PO | BO x x BC | BO y BC | PC s
    toks = [100, 101, TO, 50, TC, TO, 51, TC, PO, BO, 60, 61, BC, BO, 70, BC, PC, 102]
    lay = layout_of(toks, A, start=10)
    P = 10 + 8
    assert lay.positions[:9] == list(range(10, 19))
    assert lay.positions[9:13] == [P + 1, P + 2, P + 3, P + 4]  # branch 0, Lmax = 4
    assert lay.positions[13:16] == [P + 1, P + 2, P + 3]  # branch 1 restarts at P + 1
    assert lay.positions[16] == P + 1 + 4  # <|/para|> at P + 1 + Lmax
    assert lay.positions[17] == P + 6
    assert lay.branch[10] == (0, 0) and lay.branch[14] == (0, 1) and lay.branch[16] is None
    assert lay.next_position == P + 7


def test_mask_branches_never_see_siblings():
    toks = [100, TO, 50, TC, TO, 51, TC, PO, BO, 60, BC, BO, 70, BC, PC, 101]
    lay = layout_of(toks, A)
    b1_tok = 12  # '70' in branch 1
    assert lay.can_see(b1_tok, 7)  # <|para|>
    assert lay.can_see(b1_tok, 11)  # own <|branch|>
    assert not any(lay.can_see(b1_tok, j) for j in range(8, 11))  # branch 0
    assert all(lay.can_see(14, j) for j in range(14))  # <|/para|> sees everything
    assert all(lay.can_see(15, j) for j in range(15))


def test_two_blocks_numbered_apart():
    toks = [TO, 50, TC, PO, BO, 60, BC, PC, TO, 51, TC, TO, 52, TC, PO, BO, 61, BC, BO, 62, BC, PC]
    lay = layout_of(toks, A)
    assert [b for b in lay.branch if b] == [(0, 0)] * 3 + [(1, 0)] * 3 + [(1, 1)] * 3
    assert len(lay.blocks) == 2


def test_text_between_branches_is_rejected():
    with pytest.raises(LayoutError):
        layout_of([TO, 50, TC, PO, 99], A)


def test_without_aspd_everything_is_serial():
    lay = layout_of([5, 6, 7], None, start=3)
    assert lay.positions == [3, 4, 5] and lay.branch == [None] * 3


def test_render_drops_titles_prefixes_and_controls():
    pieces = {50: b"A", 51: b"B", 52: b": ", 60: b"one\n", 70: b"two\n", 100: b"Intro\n", 101: b"End"}
    toks = [100, TO, 50, TC, TO, 51, TC, PO, BO, 50, 52, 60, BC, BO, 51, 52, 70, BC, PC, 101]
    # "one" is a paragraph, not a list item: it ends with a blank line before its sibling (section 4)
    assert render_tokens(toks, A, pieces.__getitem__) == "Intro\none\n\ntwo\nEnd"


def test_a_joined_block_is_well_formed_markdown():
    from aspd_local.aspd.layout import branch_ending

    # list items end their line, nothing more; a cut one gets its line end
    assert branch_ending("- **Apple**: sweet.\n", last=False) == ""
    assert branch_ending("2. **Pear**: soft", last=False) == "\n"
    assert branch_ending("- **Plum**: small.", last=True) == "\n"
    # a paragraph (bold lead, heading, prose) before a sibling ends with a blank line, the last one its line
    assert branch_ending("**What it is**: a tool.\n", last=False) == "\n"
    assert branch_ending("**What it is**: a tool", last=False) == "\n\n"
    assert branch_ending("## Uses\nMany.\n\n", last=False) == ""
    assert branch_ending("**How it works**: gears.", last=True) == "\n"
    assert branch_ending("", last=False) == "" and branch_ending("\n", last=True) == ""  # empty: no line
    pieces = {50: b"A", 51: b"B", 52: b": ", 60: b"**A**: one.\n", 61: b"- one\n", 70: b"**B**: two.\n",
              71: b"- two\n"}
    block = lambda x, y: [TO, 50, TC, TO, 51, TC, PO, BO, 50, 52, x, BC, BO, 51, 52, y, BC, PC]  # noqa: E731
    assert render_tokens(block(60, 70), A, pieces.__getitem__) == "**A**: one.\n\n**B**: two.\n"
    assert render_tokens(block(61, 71), A, pieces.__getitem__) == "- one\n- two\n"


def test_metadata_and_mapping():
    meta = {"aspd.version": "1", "aspd.position_mode": "max_para", "aspd.title_separator": " - "}
    meta.update({f"aspd.token.{r}": str(i) for r, i in zip(
        ("title_open", "title_close", "para_open", "para_close", "branch_open", "branch_close"), range(10, 16))})
    ids = AspdTokens.from_metadata(meta.get)
    assert ids.ids == tuple(range(10, 16)) and ids.separator == " - "
    assert AspdTokens.from_metadata({}.get) is None
    with pytest.raises(AspdFormatError, match="normal.*cannot be served"):
        AspdTokens.from_metadata({**meta, "aspd.position_mode": "normal"}.get)
    with pytest.raises(AspdFormatError, match="needs 6"):
        AspdTokens.from_mapping("1,2,3")
    with pytest.raises(AspdFormatError, match="distinct"):
        AspdTokens.from_mapping([1, 1, 2, 3, 4, 5])
    with pytest.raises(AspdFormatError, match="not a single vocabulary entry"):
        AspdTokens.from_mapping("<a>,<b>,<c>,<d>,<e>,<f>", resolve=lambda s: None)


def test_render_of_an_unfinished_branch_drops_its_prefix():
    pieces = {50: b"A", 52: b": ", 60: b"one"}
    assert render_tokens([TO, 50, TC, PO, BO, 50, 52, 60], A, pieces.__getitem__) == "one\n"


def test_safe_prefix_never_cuts_a_block():
    from aspd_local.kv import safe_prefix

    toks = [100, TO, 50, TC, PO, BO, 60, 61, BC, BO, 70, BC, PC, 101]
    pos = layout_of(toks, A).positions
    assert safe_prefix(pos, 4) == 4  # serial: any cut is clean
    assert safe_prefix(pos, 5) == 5  # right after <|para|>
    assert safe_prefix(pos, 7) == 5  # inside branch 0: back to the block start
    assert safe_prefix(pos, 11) == 5  # inside branch 1
    assert safe_prefix(pos, 13) == 13  # after <|/para|>
