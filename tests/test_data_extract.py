"""Extraction of parallel segments from hand-written answers: render(segments) == answer byte for byte,
and the expected blocks, titles and branch counts (docs/format.md section 4)."""

from __future__ import annotations

from aspd_local.data.extract import extract
from aspd_local.data.segments import Block, Serial, from_json, render, to_json
from aspd_local.data.titles import title_of, unique_titles


def blocks(segs):
    return [s for s in segs if isinstance(s, Block)]


def check(answer):
    segs = extract(answer)
    assert render(segs) == answer
    assert render(from_json(to_json(segs))) == answer
    return segs


def test_numbered_list_with_bold_leads():
    a = ("Here are three colors:\n\n1. **Red**: warm.\n2. **Blue**: calm and cool.\n3. **Yellow**: bright.\n\n"
         "Mixing them gives the others.")
    segs = check(a)
    assert isinstance(segs[0], Serial) and segs[0].text == "Here are three colors:\n\n"
    (b,) = blocks(segs)
    assert b.kind == "numbered"
    assert b.titles == ["1. Red", "2. Blue", "3. Yellow"]  # numbered: the title carries the number
    assert b.branches[1].content == "2. **Blue**: calm and cool.\n"
    # a tight list: the blank line after it belongs to the serial text that follows
    assert segs[-1].text == "\nMixing them gives the others."


def test_bulleted_loose_list_blank_lines_go_with_each_item():
    a = "Tips:\n\n- Drink water every day.\n\n- Sleep eight hours a night.\n\n- Walk in the park.\n\nThat is all."
    segs = check(a)
    (b,) = blocks(segs)
    assert b.kind == "bulleted"
    assert [x.content for x in b.branches] == ["- Drink water every day.\n\n", "- Sleep eight hours a night.\n\n",
                                             "- Walk in the park.\n\n"]
    # first words (little ones at the end dropped)
    assert b.titles == ["Drink water every day", "Sleep eight hours", "Walk in the park"]
    assert segs[-1].text == "That is all."


def test_two_lists_give_two_blocks():
    a = ("Pros:\n\n- **Cheap**: costs little.\n- **Fast**: saves time.\n\n"
         "Cons:\n\n- **Loud**: noisy.\n- **Ugly**: not pretty.\n")
    segs = check(a)
    bs = blocks(segs)
    assert [b.titles for b in bs] == [["Cheap", "Fast"], ["Loud", "Ugly"]]
    assert [type(s).__name__ for s in segs] == ["Serial", "Block", "Serial", "Block"]
    assert segs[2].text == "\nCons:\n\n"


def test_nested_items_stay_inside_their_parent():
    a = ("Plan:\n1. Prepare the room\n   - clear the floor\n   - open the windows\n2. Paint the walls\n"
         "   - two coats\n3. Clean up the brushes\n")
    segs = check(a)
    (b,) = blocks(segs)
    assert len(b.branches) == 3
    assert b.branches[0].content == "1. Prepare the room\n   - clear the floor\n   - open the windows\n"
    assert b.titles == ["1. Prepare the room", "2. Paint the walls", "3. Clean up the brushes"]


def test_markdown_sections():
    a = ("Intro line.\n\n## History\nIt began long ago.\n\n### Detail\nA subsection.\n\n## Uses\n- one\n- two\n\n"
         "## Risks\nSome risks.\n")
    segs = check(a)
    (b,) = blocks(segs)
    assert b.kind == "sections"
    assert b.titles == ["History", "Uses", "Risks"]
    assert b.branches[0].content == "## History\nIt began long ago.\n\n### Detail\nA subsection.\n\n"
    assert segs[0].text == "Intro line.\n\n"


def test_parallel_paragraphs_after_an_introduction():
    a = ("Cats and dogs differ:\n\nCats are independent and quiet animals.\n\n"
         "Dogs are loyal and need daily walks.\n\nBirds sing in the morning.")
    segs = check(a)
    (b,) = blocks(segs)
    assert b.kind == "paragraphs"
    assert len(b.branches) == 3
    assert b.branches[0].content == "Cats are independent and quiet animals.\n\n"
    assert b.titles == ["Cats are independent", "Dogs are loyal", "Birds sing"]


def test_labelled_paragraphs():
    a = "Cost: it is cheap to run.\n\nSpeed: it is quick to start.\n"
    (b,) = blocks(check(a))
    assert b.titles == ["Cost", "Speed"]


def test_plain_prose_and_single_items_stay_serial():
    for a in ("The capital of France is Paris.",
              "Paris is big.\n\nIt has many museums and a famous tower.",
              "Steps:\n1. Only one step here.\n\nDone.",
              "17 + 25 is 42."):
        segs = check(a)
        assert segs == [Serial(a)]


def test_bold_lead_paragraphs():
    a = ("**What it is**: a vehicle with two wheels.\n\n**How it works**: pedals turn a chain.\n\n"
         "**Uses**: travel and sport.")
    segs = check(a)
    (b,) = blocks(segs)
    assert b.titles == ["What it is", "How it works", "Uses"]
    assert b.branches[-1].content == "**Uses**: travel and sport."


def test_titles_are_short_and_unique():
    assert title_of("3. **A very long bold lead that goes on and on**: text") == "A very long bold lead"
    assert title_of("- Step 2: mix the flour") == "Step 2"
    assert unique_titles(["- **Cost**: a", "- **Cost**: b", "- ***: c"]) == ["Cost 1", "Cost 2", "Item 3"]


def test_numbered_titles_carry_the_number_and_bullets_do_not():
    text = "Plan:\n\n3. **Mix** the flour well\n4. **Bake** for an hour\n\nNotes:\n\n- **Cool** it down first\n- **Serve** it warm\n"
    blocks = [s for s in extract(text) if isinstance(s, Block)]
    assert [b.titles for b in blocks] == [["3. Mix", "4. Bake"], ["Cool", "Serve"]]


def test_a_final_item_without_newline_gets_one():
    from aspd_local.data.build import even_last_branch

    a = {"answer": "Tips:\n\n- **Sleep** early every day\n- **Walk** a lot every day"}
    fixed = even_last_branch(a)["answer"]
    assert fixed == a["answer"] + "\n"
    assert all(b.content.endswith("\n") for b in extract(fixed)[1].branches)
    assert even_last_branch({"answer": "Just one sentence."})["answer"] == "Just one sentence."
