"""The prompt sets: training prompts and a held-out evaluation set, built from templates x topics.

Deterministic (seeded). Every category has its own topic pool; a seeded share of each pool is held
out for evaluation, so no evaluation prompt shares a topic with a training prompt. Rows are
``{"id", "prompt", "category"}`` (the format ``python -m aspd_local bench --prompts`` reads).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Categories whose answers should open a parallel block, and those that should stay serial.
PARALLEL_CATEGORIES = ("list", "steps", "comparison", "pros_cons", "multi_part", "sections", "tips")
SERIAL_CATEGORIES = ("serial_fact", "serial_math", "serial_yesno", "serial_definition", "serial_sentence")


@dataclass(frozen=True)
class Family:
    category: str
    templates: tuple[str, ...]
    topics: tuple  # str, or a tuple of template fields


_N = ("three", "four", "five")

FAMILIES = (
    Family("list", (
        "List {n} {t} and say one thing about each.",
        "Name {n} {t}.",
        "What are {n} common {t}? Describe each briefly.",
        "Give me a list of {n} {t}.",
    ), ("fruits", "vegetables", "farm animals", "wild animals", "birds", "fish", "flowers", "trees",
        "musical instruments", "sports", "board games", "planets", "countries in Europe", "countries in Asia",
        "rivers", "mountains", "famous painters", "famous scientists", "programming languages", "kitchen tools",
        "garden tools", "types of weather", "colors", "dog breeds", "cat breeds", "insects", "desserts",
        "breakfast foods", "kinds of bread", "cheeses", "spices", "herbs", "vehicles", "jobs in a hospital",
        "school subjects", "hobbies", "card games", "dances", "types of clouds", "gemstones", "metals",
        "renewable energy sources", "ocean animals", "reptiles", "winter sports", "summer activities",
        "office supplies", "types of shoes", "pieces of furniture", "holidays", "languages", "cities in America",
        "parts of a computer", "parts of a car", "body organs", "emotions", "kinds of pasta", "nuts", "berries",
        "types of tea")),
    Family("steps", (
        "What are the steps to {t}?",
        "How do I {t}? Explain step by step.",
        "Explain how to {t}.",
    ), ("make a cup of tea", "boil an egg", "plant a tree", "change a flat tire", "bake bread", "wash a car",
        "write a resume", "start a vegetable garden", "clean a kitchen", "learn to swim", "make a sandwich",
        "brew coffee", "tie a tie", "set up a fish tank", "paint a room", "make pancakes", "study for an exam",
        "pack for a trip", "train a puppy", "make a paper airplane", "build a campfire", "cook rice",
        "wrap a present", "make a smoothie", "organize a closet", "start running", "make a budget",
        "plan a party", "sew a button", "repot a plant", "make lemonade", "clean a bicycle", "bake cookies",
        "write a letter", "prepare for a job interview", "make a salad", "set a table", "fold a shirt",
        "make soup", "hang a picture")),
    Family("comparison", (
        "Compare {a} and {b}.",
        "What are the differences between {a} and {b}?",
        "How do {a} and {b} differ?",
    ), (("cats", "dogs"), ("tea", "coffee"), ("trains", "planes"), ("summer", "winter"), ("books", "movies"),
        ("the sun", "the moon"), ("cities", "villages"), ("bicycles", "cars"), ("rivers", "lakes"),
        ("apples", "oranges"), ("email", "letters"), ("football", "basketball"), ("piano", "guitar"),
        ("frogs", "toads"), ("butter", "margarine"), ("rain", "snow"), ("laptops", "desktops"),
        ("running", "swimming"), ("oceans", "deserts"), ("birds", "bats"), ("wood", "steel"),
        ("radio", "television"), ("hotels", "campsites"), ("bees", "wasps"), ("wolves", "foxes"),
        ("bread", "rice"), ("spring", "autumn"), ("paper books", "e-books"), ("chess", "checkers"),
        ("crocodiles", "alligators"), ("stars", "planets"), ("ships", "submarines"))),
    Family("pros_cons", (
        "What are the pros and cons of {t}?",
        "Give the advantages and disadvantages of {t}.",
        "List the pros and cons of {t}.",
    ), ("working from home", "living in a big city", "owning a car", "social media", "electric cars",
        "online shopping", "public transport", "homeschooling", "solar panels", "living alone", "fast food",
        "video games", "having a pet", "wearing a uniform", "nuclear power", "buying a house", "traveling alone",
        "learning online", "smartphones for children", "a four-day work week", "living in the countryside",
        "cash payments", "team sports", "renting an apartment", "getting up early", "self-driving cars",
        "vegetarian diets", "open-plan offices", "camping", "tourism")),
    Family("multi_part", (
        "Tell me about {t}: what it is, why it matters, and how people use it.",
        "Tell me about {t}: what it is, where it comes from, and what it is used for.",
        "Explain {t}: its history, how it works, and its main uses.",
    ), ("electricity", "the internet", "paper", "glass", "the compass", "the printing press", "vaccines",
        "the telephone", "recycling", "photosynthesis", "the wheel", "money", "maps", "clocks", "plastic",
        "soap", "honey", "cotton", "salt", "chocolate", "rubber", "the calendar", "batteries", "satellites",
        "concrete", "wind power", "coffee", "silk")),
    Family("sections", (
        "Write a short guide to {t} with a section for each part.",
        "Describe {t} in a few short sections.",
        "Give an overview of {t}, organised under headings.",
    ), ("keeping chickens", "healthy sleep", "the solar system", "first aid", "saving money", "home safety",
        "the human heart", "volcanoes", "ancient Egypt", "the water cycle", "growing tomatoes", "bird watching",
        "the Roman Empire", "climate zones", "healthy eating", "public speaking", "the ocean", "rainforests",
        "the immune system", "earthquakes", "starting a small business", "recycling at home", "dinosaurs",
        "the Olympic Games")),
    Family("tips", (
        "What are some tips for {t}?",
        "Give me {n} tips for {t}.",
        "What are the benefits of {t}?",
    ), ("staying healthy", "learning a language", "saving energy at home", "sleeping better", "reading more",
        "keeping a house plant alive", "staying focused", "making friends", "drinking more water",
        "reducing stress", "writing clearly", "cooking at home", "walking every day", "keeping a diary",
        "gardening", "riding a bike in traffic", "taking good photos", "eating breakfast", "playing chess",
        "meditation", "learning to draw", "keeping a room tidy", "cycling to work", "drinking tea",
        "practising music")),
    Family("serial_fact", (
        "What is the capital of {t}?",
        "What is the largest city in {t}?",
        "What language is spoken in {t}?",
    ), ("France", "Japan", "Italy", "Germany", "Spain", "Egypt", "Canada", "Brazil", "Mexico", "Greece",
        "Norway", "Sweden", "Portugal", "Kenya", "Peru", "Chile", "Ireland", "Poland", "Austria", "Turkey",
        "Thailand", "Vietnam", "Argentina", "Morocco", "Finland", "Denmark", "Australia", "India")),
    Family("serial_math", (
        "What is {a} + {b}?",
        "What is {a} times {b}?",
        "What is {a} minus {b}?",
    ), tuple((a, b) for a, b in ((17, 25), (12, 9), (40, 13), (7, 8), (15, 6), (99, 1), (23, 19), (50, 25),
                                  (11, 11), (36, 4), (81, 9), (64, 16), (30, 12), (45, 15), (9, 9), (14, 3),
                                  (72, 8), (27, 13), (100, 37), (18, 5), (33, 22), (48, 6)))),
    Family("serial_yesno", (
        "Is {a} a kind of {b}?",
        "Is {a} a {b}? Answer yes or no.",
    ), (("a whale", "fish"), ("a tomato", "fruit"), ("a spider", "insect"), ("a bat", "bird"),
        ("a penguin", "bird"), ("a potato", "vegetable"), ("a dolphin", "mammal"), ("a shark", "fish"),
        ("a peanut", "nut"), ("a strawberry", "berry"), ("a carrot", "root"), ("a frog", "reptile"))),
    Family("serial_yesno", (
        "Can {a} {b}?",
        "Is it true that {a} can {b}?",
    ), (("ostriches", "fly"), ("fish", "breathe underwater"), ("snakes", "hear"), ("dogs", "see colors"),
        ("plants", "grow without light"), ("water", "freeze"), ("humans", "breathe in space"),
        ("penguins", "swim"), ("chickens", "fly"), ("ice", "float on water"), ("cats", "swim"))),
    Family("serial_definition", (
        "Define {t} in one sentence.",
        "What does the word {t} mean?",
        "What is {t}?",
    ), ("gravity", "democracy", "a noun", "a verb", "an island", "a mammal", "a triangle", "a volcano",
        "a glacier", "a desert", "a peninsula", "an atom", "a planet", "a poem", "a bridge", "a library",
        "a vaccine", "a calendar", "a harbor", "a forest", "friction", "an orbit", "a fossil", "a comet")),
    Family("serial_sentence", (
        "Write one sentence about {t}.",
        "Describe {t} in a single sentence.",
        "Say something nice about {t}.",
    ), ("the sea", "a rainy day", "my grandmother", "a cup of coffee", "the morning sun", "a quiet library",
        "autumn leaves", "a busy market", "a mountain lake", "the night sky", "a birthday party",
        "a small town", "a snowy forest", "a summer evening", "an old bridge", "a city park", "a bakery",
        "a long train ride", "a thunderstorm", "a garden in spring")),
)


def _fill(template: str, topic, rng: random.Random) -> str:
    fields = {"n": rng.choice(_N)}
    if isinstance(topic, tuple):
        fields.update(a=topic[0], b=topic[1])
    else:
        fields["t"] = topic
    return template.format(**fields)


def _split_topics(fam: Family, rng: random.Random, eval_share: float) -> tuple[list, list]:
    topics = list(fam.topics)
    rng.shuffle(topics)
    n_eval = max(1, round(len(topics) * eval_share))
    return topics[n_eval:], topics[:n_eval]


def _pools(seed: int) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Every prompt of every category, split by topic into (training pool, evaluation pool)."""
    train_pool: dict[str, list[str]] = {}
    eval_pool: dict[str, list[str]] = {}
    for fam in FAMILIES:
        frng = random.Random(f"{seed}-{fam.category}-{fam.templates[0]}")
        tr, ev = _split_topics(fam, frng, 0.2)
        # every (template, topic) pair; the text decides uniqueness
        tr_set = set(train_pool.get(fam.category, ())) | {_fill(tpl, t, frng) for t in tr for tpl in fam.templates}
        ev_set = set(eval_pool.get(fam.category, ())) | {_fill(tpl, t, frng) for t in ev for tpl in fam.templates}
        train_pool[fam.category] = sorted(tr_set)
        eval_pool[fam.category] = sorted(ev_set)
    return train_pool, eval_pool


def build_prompt_sets(seed: int = 0, n_train: int = 400, serial_share: float = 0.25,
                      n_eval_list: int = 40, n_eval_serial: int = 20) -> tuple[list[dict], list[dict]]:
    """(training prompts, evaluation prompts). Same arguments, same rows."""
    rng = random.Random(seed)
    train_pool, eval_pool = _pools(seed)
    n_serial = round(n_train * serial_share)
    train = _draw(train_pool, PARALLEL_CATEGORIES, n_train - n_serial, rng) + \
        _draw(train_pool, SERIAL_CATEGORIES, n_serial, rng)
    rng.shuffle(train)  # interleaved, so a partial answer file covers every category
    evals = _draw(eval_pool, PARALLEL_CATEGORIES, n_eval_list, rng) + _draw(eval_pool, SERIAL_CATEGORIES,
                                                                           n_eval_serial, rng)
    train_rows = [{"id": f"p{i:04d}", "prompt": p, "category": c} for i, (c, p) in enumerate(train)]
    eval_rows = [{"id": f"e{i:03d}", "prompt": p, "category": c} for i, (c, p) in enumerate(evals)]
    return train_rows, eval_rows


def extra_prompts(existing: list[dict], n: int, seed: int = 0, categories=PARALLEL_CATEGORIES) -> list[dict]:
    """Up to ``n`` more training prompts of ``categories`` (ids ``x0000``...), none in ``existing``, from the
    training topics only (the evaluation topics stay held out)."""
    train_pool, _ = _pools(seed)
    have = {r["prompt"] for r in existing}
    pool = {c: [p for p in train_pool[c] if p not in have] for c in categories}
    drawn = _draw(pool, categories, n, random.Random(f"{seed}-extra"))
    return [{"id": f"x{i:04d}", "prompt": p, "category": c} for i, (c, p) in enumerate(drawn)]


def _draw(pool: dict[str, list[str]], categories, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` prompts spread as evenly as the pools allow over ``categories`` (round robin, shuffled pools)."""
    queues = {c: rng.sample(pool[c], len(pool[c])) for c in categories}
    out: list[tuple[str, str]] = []
    while len(out) < n and any(queues.values()):
        for c in categories:
            if queues[c] and len(out) < n:
                out.append((c, queues[c].pop()))
    return out
