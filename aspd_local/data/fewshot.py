"""How the base model is asked: a few fixed example turns before the user's message.

Gemma 3 270M as shipped is a pretrained (not instruction-tuned) model: asked directly, with either
the Gemma turn markers or the plain ``### User:`` template, it repeats the question or invents new
turns. With a few example turns in front (in-context alignment), it answers in its own words, in
the formats the examples show (numbered and bulleted lists with bold leads, short serial facts).
The examples are a generation aid only: training rows hold the user's message alone, so the model
learns to answer that way without them. The answer ends where the model starts a new turn.
"""

from __future__ import annotations

import re

SHOTS: tuple[tuple[str, str], ...] = (
    ("Name three primary colors and say something about each.",
     "Here are the three primary colors:\n\n"
     "1. **Red**: the color of fire and ripe strawberries. It often stands for warmth, energy or danger.\n"
     "2. **Blue**: the color of a clear sky and the deep sea. It feels calm and cool.\n"
     "3. **Yellow**: the color of sunlight and lemons. It is bright and cheerful.\n\n"
     "Mixing these three gives every other color."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("What are the steps to make toast?",
     "Here is how to make toast:\n\n"
     "1. **Slice the bread**: cut a slice about one centimetre thick.\n"
     "2. **Heat the toaster**: set it to a medium level.\n"
     "3. **Toast the bread**: leave it in for two or three minutes, until it is golden.\n"
     "4. **Add a topping**: spread butter or jam while it is still warm.\n\n"
     "Enjoy it while it is hot."),
    ("What is 12 times 3?", "12 times 3 is 36."),
    ("Compare the sea and a swimming pool.",
     "The sea and a swimming pool differ in several ways:\n\n"
     "- **Water**: the sea is salty and always moving; a pool holds clean, treated water.\n"
     "- **Size**: the sea is huge and deep, while a pool is small and its depth is marked.\n"
     "- **Safety**: a pool has calm water and often a lifeguard; the sea has waves and currents.\n\n"
     "Both are good places to swim."),
    ("Is a robin a bird?", "Yes, a robin is a bird."),
    ("Tell me about the bicycle: what it is, how it works, and what it is used for.",
     "**What it is**: a bicycle is a vehicle with two wheels that a person rides and pedals.\n\n"
     "**How it works**: the pedals turn a chain that drives the back wheel, and the handlebars steer the "
     "front wheel.\n\n"
     "**What it is used for**: people ride bicycles to get to work or school, for sport, and for fun."),
    ("What are the benefits of regular exercise?",
     "Regular exercise has many benefits:\n\n"
     "- **Stronger heart**: exercise trains the heart and lowers blood pressure.\n"
     "- **Better mood**: physical activity releases endorphins that reduce stress.\n"
     "- **Healthy weight**: it burns calories and builds muscle.\n"
     "- **Better sleep**: active people fall asleep faster and sleep more deeply.\n\n"
     "Even a short walk every day makes a difference."),
    ("Define a river in one sentence.", "A river is a large natural stream of water that flows into a sea or a lake."),
)

# Issue 13: the same style, but the examples that ask for a number of items (in digits and in words, 2
# to 6) answer with exactly that many. The first set (SHOTS) shows a count once ("three primary colors").
SHOTS_COUNTED: tuple[tuple[str, str], ...] = (
    SHOTS[0],
    SHOTS[1],
    ("Give me 2 tips for keeping shoes clean.",
     "Here are two tips:\n\n"
     "- **Brush off the dirt**: let mud dry, then brush it away before it soaks into the material.\n"
     "- **Use a protective spray**: a water-repellent spray keeps stains from setting in.\n\n"
     "With these two habits your shoes stay clean for longer."),
    SHOTS[2],
    SHOTS[3],
    ("Name 5 things people take on a picnic.",
     "Here are five things to take on a picnic:\n\n"
     "1. **A blanket**: something dry and soft to sit on.\n"
     "2. **Sandwiches**: easy to pack and to share.\n"
     "3. **Fresh fruit**: apples, grapes or strawberries keep well outdoors.\n"
     "4. **Water**: a bottle for everyone, especially on a hot day.\n"
     "5. **A bag for rubbish**: leave the place as clean as you found it.\n\n"
     "That is all you need for a relaxed afternoon."),
    SHOTS[4],
    SHOTS[5],
    SHOTS[6],
    ("What are six benefits of regular exercise?",
     "Regular exercise has six main benefits:\n\n"
     "- **Stronger heart**: exercise trains the heart and lowers blood pressure.\n"
     "- **Better mood**: physical activity releases endorphins that reduce stress.\n"
     "- **Healthy weight**: it burns calories and builds muscle.\n"
     "- **Better sleep**: active people fall asleep faster and sleep more deeply.\n"
     "- **Stronger bones**: walking and lifting keep bones dense as we age.\n"
     "- **More energy**: a fitter body tires less during the day.\n\n"
     "Even a short walk every day makes a difference."),
    SHOTS[8],
)

# "none": no example turns, the user's message alone in the model's chat template (an instruction-tuned
# base such as SmolLM2-135M-Instruct, aspd_local.bases)
FEWSHOT_SETS = {"v1": SHOTS, "counted": SHOTS_COUNTED, "none": ()}
DEFAULT_FEWSHOT = "counted"  # what new answers are written with (each answer row records its set)

# The model starts a new turn with a line like "### User:" (or a role it invents, "### Student:");
# the answer is the text before it. Markdown headers ("## Uses") do not end with a colon.
_TURN = re.compile(r"(?:^|\n)#{2,3} ?[A-Za-z][\w ]{0,20}:[ \t]*(?:\n|$)")


def shots_named(name: str | None) -> tuple[tuple[str, str], ...]:
    """The example turns of a named set (None: the first set, ``v1``, that every older answer used)."""
    if name is None:
        return SHOTS
    try:
        return FEWSHOT_SETS[name]
    except KeyError:
        raise ValueError(f"unknown few-shot set {name!r} (known: {', '.join(FEWSHOT_SETS)})") from None


def messages_for(prompt: str, shots: tuple[tuple[str, str], ...] = SHOTS) -> list[dict]:
    """The chat messages the base model is given to answer ``prompt``."""
    msgs: list[dict] = []
    for user, assistant in shots:
        msgs.append({"role": "user", "content": user})
        msgs.append({"role": "assistant", "content": assistant})
    msgs.append({"role": "user", "content": prompt})
    return msgs


def turn_end(text: str) -> int | None:
    """Index where the model started a new turn in ``text`` (None if it has not)."""
    m = _TURN.search(text)
    return m.start() if m else None
