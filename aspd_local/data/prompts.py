"""The prompt sets: training prompts and a held-out evaluation set, built from templates x topics.

Deterministic (seeded). Every category has its own topic pool; a seeded share of each pool is held
out for evaluation, so no evaluation prompt shares a topic with a training prompt. Rows are
``{"id", "prompt", "category", "count"}`` (the format ``python -m aspd_local bench --prompts`` reads):
``count`` is how many items the prompt asks for (2..7; for a prompt that names its parts, how many it
names; for "N pros and N cons", 2N), or null (an implicit list, or a serial prompt); ``count_form``
says how it is asked (``digits``, ``words``, ``enumerated``, ``compound``). ``looks_list`` marks a
serial prompt that looks list-like ("What is the first step to ...?", "Name the capital of ...").

Two generations of prompts:
- the first sets (``build_prompt_sets``: ``p0000``.., ``extra_prompts``: ``x0000``..), exactly as the
  shipped delta's answers were made from (only ``count`` and ``count_form`` were added to their rows);
- ``more_prompts`` (ids ``m`` + a hash of the text, so an id never changes meaning): many phrasings per
  category (polite, "I need", "Help me", a context sentence first, imperative, terse, questions), counts
  from 2 to 7 in digits and in words, larger topic pools, and serial prompts that look list-like. It
  uses the first sets' training topics plus new ones, never their evaluation topics (nor a new topic
  that contains one), and draws prefix-stably: asking for more rows never changes the earlier ones.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from .quality import asked_count

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
    train_rows = [_row(f"p{i:04d}", c, p) for i, (c, p) in enumerate(train)]
    eval_rows = [_row(f"e{i:03d}", c, p) for i, (c, p) in enumerate(evals)]
    return train_rows, eval_rows


def _row(id_: str, category: str, prompt: str) -> dict:
    """A row of the first sets, with the count its prompt asks for: the number word of a ``{n}``
    template, or the three parts every ``multi_part`` template of the first sets names."""
    row = {"id": id_, "prompt": prompt, "category": category, "count": None}
    if category == "multi_part":
        row.update(count=3, count_form="enumerated")
    elif category in PARALLEL_CATEGORIES and (n := asked_count(prompt)) is not None:
        row.update(count=n, count_form="words")
    return row


def extra_prompts(existing: list[dict], n: int, seed: int = 0, categories=PARALLEL_CATEGORIES) -> list[dict]:
    """Up to ``n`` more training prompts of ``categories`` (ids ``x0000``...), none in ``existing``, from the
    training topics only (the evaluation topics stay held out)."""
    train_pool, _ = _pools(seed)
    have = {r["prompt"] for r in existing}
    pool = {c: [p for p in train_pool[c] if p not in have] for c in categories}
    drawn = _draw(pool, categories, n, random.Random(f"{seed}-extra"))
    return [_row(f"x{i:04d}", c, p) for i, (c, p) in enumerate(drawn)]


def _draw(pool: dict[str, list[str]], categories, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` prompts spread as evenly as the pools allow over ``categories`` (round robin, shuffled pools)."""
    queues = {c: rng.sample(pool[c], len(pool[c])) for c in categories}
    out: list[tuple[str, str]] = []
    while len(out) < n and any(queues.values()):
        for c in categories:
            if queues[c] and len(out) < n:
                out.append((c, queues[c].pop()))
    return out


# ---------------------------------------------------------------------------------------------------------
# More prompts (issue 13): many phrasings, explicit counts 2..7 in digits and words, larger topic pools.

@dataclass(frozen=True)
class T:
    """A template. ``{t}``/``{T}``: the topic (``{T}`` capitalised); ``{a}``/``{A}``, ``{b}``: a pair's
    members; ``{n}``/``{N}``: the count, as digits or as a word. ``count``: ``"n"`` (2..7 from ``{n}``),
    ``"pair"`` (``{n}`` pros and ``{n}`` cons: 2n, n in 2..3), an int (the parts the template names), or
    None (no count asked)."""

    text: str
    count: int | str | None = None
    looks_list: bool = False


@dataclass(frozen=True)
class MoreFamily:
    category: str
    templates: tuple[T, ...]
    topics: tuple | str  # topics, or a category: the topics of that category's first family


_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
COUNTS = tuple(_WORDS)

_LIST_TOPICS = (
    "citrus fruits", "root vegetables", "sea birds", "birds of prey", "desert animals", "arctic animals",
    "jungle animals", "nocturnal animals", "animals that hibernate", "types of rock", "minerals", "famous bridges",
    "famous buildings", "famous composers", "famous writers", "famous inventors", "famous explorers",
    "ancient civilizations", "musical genres", "string instruments", "wind instruments", "percussion instruments",
    "ball games", "outdoor games for children", "party games", "soups", "salads", "cakes", "cookies",
    "healthy snacks", "hot drinks", "kinds of rice", "grains", "beans", "mushrooms", "kitchen appliances",
    "power tools", "hand tools", "camping gear", "things to pack for a beach trip", "items for a first aid kit",
    "garden flowers", "spring flowers", "types of forests", "deserts of the world", "islands", "lakes", "oceans",
    "volcanoes", "national parks", "capital cities", "cities in Europe", "countries in Africa",
    "countries in South America", "shapes", "units of measurement", "fields of science", "branches of biology",
    "types of energy", "simple machines", "inventions", "ways to communicate", "web browsers", "movie genres",
    "book genres", "poetry forms", "fairy tales", "mythical creatures", "Greek gods", "constellations",
    "moons in the solar system", "farm crops", "dairy products", "sources of protein", "vitamins",
    "exercises for beginners", "martial arts", "parts of a flower", "parts of a plant", "parts of the eye",
    "bones in the body", "muscles", "senses", "weather instruments", "natural disasters", "kinds of pollution",
    "recyclable materials", "fabrics", "winter clothes", "jobs at a school", "outdoor jobs", "careers in science",
    "boats", "aircraft", "household chores", "cleaning products", "things found in a classroom",
    "things found in an office", "art supplies", "painting styles", "architectural styles", "types of houses",
    "rooms in a house", "pizza toppings", "sandwich fillings", "ice cream flavors", "breakfast drinks",
    "kinds of cake", "spices used in curry", "sea creatures", "rodents", "amphibians", "big cats", "primates",
    "song birds", "water birds", "wild flowers", "climbing plants", "cacti", "famous castles", "famous rivers",
    "famous mountains", "famous paintings", "famous novels", "inventions of the last century", "chess pieces",
    "garden birds", "pets for children", "musical instruments from Africa", "traditional foods of Italy",
    "traditional foods of Japan", "things to do on a rainy day", "indoor activities", "team games",
)

_STEPS_TOPICS = (
    "clean a window", "make a bed", "iron a shirt", "polish shoes", "cook pasta", "make scrambled eggs",
    "roast vegetables", "make pizza at home", "bake a cake", "make a fruit salad", "make hot chocolate",
    "set up a new phone", "back up a computer", "create a strong password", "write a thank-you note",
    "write a short story", "give a presentation", "memorize a poem", "practice a speech", "start a journal",
    "plan a weekly menu", "save for a holiday", "open a bank account", "change a light bulb", "unclog a sink",
    "fix a squeaky door", "assemble a bookshelf", "paint a fence", "mow a lawn", "rake leaves",
    "compost kitchen scraps", "care for a cactus", "groom a dog", "teach a dog to sit", "ride a bike",
    "fix a bike chain", "pump up a bicycle tire", "check the oil in a car", "wash dishes by hand",
    "load a dishwasher", "do the laundry", "make a paper boat", "fold a paper crane", "draw a simple face",
    "knit a scarf", "make a bird feeder", "build a snowman", "make a kite", "pitch a tent", "read a map",
    "use a compass", "tie a shoelace", "learn to juggle", "warm up before exercise", "prepare for a marathon",
    "get ready for a long flight", "make a packing list", "write a shopping list", "host a dinner party",
    "decorate a cake", "carve a pumpkin", "clean a laptop keyboard", "take a screenshot", "plan a road trip",
    "write a cover letter", "make homemade bread", "grill a burger", "make a pot of chili", "make guacamole",
    "clean an oven", "defrost a freezer", "wallpaper a room", "put up a shelf", "make a photo album",
    "learn a magic trick", "make a birthday card", "bathe a cat", "fly a drone", "clean a swimming pool",
)

_COMPARISON_PAIRS = (
    ("lions", "tigers"), ("rabbits", "hares"), ("butterflies", "moths"), ("sheep", "goats"), ("horses", "donkeys"),
    ("dolphins", "sharks"), ("turtles", "tortoises"), ("mice", "rats"), ("ducks", "geese"), ("violins", "cellos"),
    ("drums", "pianos"), ("jazz", "blues"), ("poems", "songs"), ("novels", "short stories"),
    ("newspapers", "magazines"), ("podcasts", "radio shows"), ("phones", "tablets"), ("walking", "cycling"),
    ("yoga", "pilates"), ("tennis", "badminton"), ("rugby", "soccer"), ("skiing", "snowboarding"),
    ("hiking", "climbing"), ("mountains", "hills"), ("weather", "climate"), ("hurricanes", "tornadoes"),
    ("fog", "mist"), ("sugar", "honey"), ("milk", "yogurt"), ("cheese", "butter"), ("pasta", "noodles"),
    ("soup", "stew"), ("baking", "frying"), ("cities", "towns"), ("houses", "apartments"), ("trains", "buses"),
    ("cars", "motorcycles"), ("gold", "silver"), ("iron", "copper"), ("glass", "plastic"), ("cotton", "wool"),
    ("candles", "lamps"), ("maps", "globes"), ("pens", "pencils"), ("doctors", "nurses"), ("museums", "zoos"),
    ("parks", "gardens"), ("breakfast", "dinner"), ("mornings", "evenings"), ("Mars", "Venus"),
    ("comets", "asteroids"), ("viruses", "bacteria"), ("muscles", "bones"), ("fruits", "vegetables"),
    ("owls", "hawks"), ("crows", "ravens"), ("seals", "sea lions"), ("camels", "llamas"), ("bread", "cake"),
    ("markets", "supermarkets"), ("schools", "universities"), ("rivers", "canals"), ("hotels", "hostels"),
)

_PROS_CONS_TOPICS = (
    "working night shifts", "studying abroad", "living with roommates", "owning a dog", "eating out",
    "cooking in bulk", "flying instead of driving", "taking a gap year", "wearing contact lenses",
    "using a credit card", "online banking", "reading on a tablet", "wind farms", "hydropower",
    "high-speed trains", "bike lanes", "tiny houses", "living near the sea", "moving to a new city",
    "changing careers", "starting a business", "part-time work", "homework", "early retirement", "owning a boat",
    "car sharing", "smart watches", "voice assistants", "streaming services", "e-readers", "organic food",
    "frozen vegetables", "camping in winter", "cruise holidays", "learning to code", "a standing desk",
    "city bikes", "living in a small town", "having a garden", "shopping at farmers' markets", "boarding schools",
    "large families", "working in an office", "group travel", "sleeping in on weekends", "paper maps",
    "keeping a diary", "living on a boat", "growing your own food", "buying second-hand clothes",
)

_MULTI_PART_TOPICS = (  # singular or mass nouns: the templates say "what it is"
    "the microscope", "the steam engine", "the light bulb", "the radio", "television", "the camera",
    "the airplane", "bread", "cheese", "tea", "rice", "wool", "iron", "gold", "copper", "the moon", "the tide",
    "the honeybee", "the coral reef", "the alphabet", "music", "yoga", "chess", "origami", "pottery", "weaving",
    "the public library", "the museum", "the suspension bridge", "the tunnel", "the lighthouse", "the windmill",
    "compost", "oxygen", "DNA", "penicillin", "the x-ray", "GPS", "email", "the password", "the spreadsheet",
    "the thermometer", "the microwave oven", "the refrigerator", "the telescope", "the piano", "paper money",
    "the postal service", "sugar", "olive oil", "the vaccine", "the satellite", "the clock", "the map",
)

_SECTIONS_TOPICS = (
    "the human brain", "the moon", "bees", "coral reefs", "the Arctic", "deserts", "castles", "the Vikings",
    "ancient Greece", "the Industrial Revolution", "the planets", "weather", "caring for a dog", "caring for a cat",
    "learning to cook", "running a marathon", "camping safety", "time management", "personal finance",
    "composting", "beekeeping", "photography", "chess for beginners", "the history of flight",
    "the digestive system", "the skeleton", "weather forecasting", "the history of money", "space exploration",
    "healthy teeth", "garden birds", "mountain safety", "the Amazon river", "ancient China", "the printing of books",
    "tropical fish", "the seasons",
)

_TIPS_TOPICS = (
    "saving money on groceries", "staying safe online", "packing light", "waking up early",
    "running in hot weather", "staying warm in winter", "keeping cool in summer", "travelling with children",
    "speaking in meetings", "remembering names", "eating more vegetables", "spending less time on the phone",
    "keeping a budget", "writing emails", "taking notes in class", "caring for a new puppy", "hiking safely",
    "driving at night", "staying calm in traffic", "learning to play the guitar", "cleaning a small apartment",
    "decorating a small room", "hosting guests", "cooking for one", "baking bread at home", "staying motivated",
    "managing time", "getting along with neighbors", "preparing for winter", "taking care of your eyes",
    "protecting your back at work", "reducing waste", "saving water", "shopping on a budget",
    "sleeping on a plane", "memorizing facts", "being a good listener", "giving feedback", "handling criticism",
    "starting a new job", "working in a team", "growing herbs indoors", "painting with watercolors",
    "learning to type faster", "keeping your phone battery healthy", "organizing a desk",
)

_REASONS_TOPICS = (
    "learn a second language", "read every day", "keep a journal", "go for walks", "eat more fruit",
    "visit museums", "learn history", "recycle", "take breaks at work", "ride a bike to school",
    "get enough sleep", "learn to cook", "play a musical instrument", "spend time outdoors", "volunteer",
    "travel abroad", "learn math", "wear sunscreen", "limit screen time", "adopt a pet from a shelter",
    "shop locally", "write by hand", "learn first aid", "stretch every morning", "save money each month",
    "visit national parks", "study science", "listen to music", "keep a tidy desk", "join a club",
    "learn to swim as an adult", "grow vegetables", "take the stairs", "drink water instead of soda",
    "use public transport", "turn off the lights", "visit a library", "learn to draw as an adult",
)

_COUNTRIES = (
    "Belgium", "the Netherlands", "Switzerland", "Hungary", "Romania", "Bulgaria", "Croatia", "Serbia", "Ukraine",
    "Iceland", "Estonia", "Latvia", "Lithuania", "Slovakia", "Slovenia", "China", "South Korea", "Indonesia",
    "Malaysia", "the Philippines", "Pakistan", "Bangladesh", "Nepal", "Iran", "Saudi Arabia", "Israel", "Jordan",
    "Nigeria", "Ghana", "Ethiopia", "Tanzania", "South Africa", "Algeria", "Tunisia", "Senegal", "Colombia",
    "Venezuela", "Ecuador", "Bolivia", "Uruguay", "Paraguay", "Cuba", "Jamaica", "Mongolia", "Cambodia",
    "Sri Lanka", "Qatar", "Luxembourg", "Cyprus", "Malta",
)

_DEFINITIONS = (
    "a synonym", "an adjective", "a metaphor", "a fraction", "a prime number", "a rectangle", "a circle",
    "an equation", "a thermometer", "a telescope", "a microscope", "a magnet", "an eclipse", "a tide",
    "a hurricane", "a canyon", "a valley", "a river delta", "a coral reef", "a marsh", "a habitat", "a predator",
    "a herbivore", "a seed", "pollen", "a galaxy", "a meteor", "an asteroid", "a museum", "a passport",
    "a recipe", "a loan", "an election", "a court", "a newspaper", "a novel", "a chorus", "a rhyme",
    "an orchestra", "a sculpture", "a habit", "erosion", "evaporation", "a continent", "a molecule", "a cell",
    "an ecosystem", "a republic", "a monarchy", "an adverb", "a pronoun", "a budget", "a contract", "a fable",
)

_SCENES = (
    "a foggy harbor", "a windy hill", "a candle in the dark", "a fresh loaf of bread", "a sleeping cat",
    "a full moon", "a school playground", "a lighthouse", "a field of sunflowers", "a frozen lake",
    "a desert at night", "a campfire", "a rainbow", "the first day of spring", "a crowded stadium",
    "a fishing boat", "an empty street at night", "a village square", "a hot summer afternoon",
    "a winter morning", "a cozy kitchen", "a flower shop", "a country road", "an old clock", "a waterfall",
    "a bird's nest", "a puppy", "the smell of rain", "a bowl of soup", "a handwritten letter",
    "a mountain cabin", "a river at sunset", "a school bus", "a birthday cake", "a ferry crossing",
    "a museum hall", "a train at night", "an autumn walk", "a bookshop", "a sandcastle",
)

_YESNO_KIND = (
    ("a banana", "berry"), ("a mushroom", "plant"), ("a whale", "mammal"), ("a koala", "bear"),
    ("a seahorse", "fish"), ("a starfish", "fish"), ("a jellyfish", "fish"), ("a cucumber", "fruit"),
    ("a pumpkin", "fruit"), ("a turtle", "reptile"), ("a salamander", "lizard"), ("a snail", "insect"),
    ("a butterfly", "insect"), ("a crab", "insect"), ("bamboo", "grass"), ("a platypus", "mammal"),
    ("an emu", "bird"), ("a lobster", "fish"), ("a rabbit", "rodent"), ("an almond", "nut"),
    ("a pepper", "vegetable"), ("Pluto", "planet"), ("the sun", "star"), ("the moon", "planet"),
    ("a bee", "insect"), ("an eel", "fish"), ("a squirrel", "rodent"), ("a rose", "flower"),
    ("an avocado", "fruit"), ("a worm", "insect"),
)

_YESNO_CAN = (
    ("penguins", "fly"), ("bats", "see in the dark"), ("camels", "go without water for days"),
    ("sound", "travel through space"), ("frogs", "live on land"), ("elephants", "jump"), ("whales", "breathe air"),
    ("octopuses", "change color"), ("parrots", "copy human speech"), ("snails", "sleep"), ("ants", "swim"),
    ("horses", "sleep standing up"), ("owls", "turn their heads"), ("goldfish", "see colors"),
    ("trees", "live for a thousand years"), ("glass", "melt"), ("sharks", "smell blood"), ("cats", "taste sugar"),
    ("lightning", "strike the same place twice"), ("people", "hear a dog whistle"),
)

_WHICH = (
    ("the sun", "the moon"), ("an elephant", "a mouse"), ("Asia", "Europe"), ("a lake", "an ocean"),
    ("a minute", "an hour"), ("Mount Everest", "Mont Blanc"), ("a whale", "a dolphin"), ("Jupiter", "Earth"),
    ("a bus", "a bicycle"), ("a kilometre", "a mile"), ("the Nile", "the Thames"), ("a cup", "a litre"),
)


PLURAL_MULTI_PART = ("vaccines", "satellites", "clocks", "maps")  # first-sets topics; singular ones above


def _math_pairs(seed: int) -> tuple:
    rng = random.Random(f"{seed}-more-math")
    pairs = []
    while len(pairs) < 90:
        a, b = rng.randint(11, 99), rng.randint(2, 49)
        if a > b and (a, b) not in pairs:
            pairs.append((a, b))
    return tuple(pairs)


def _more_families(seed: int) -> tuple[MoreFamily, ...]:
    """The families; a family with its own topics also takes the first sets' training topics of the same
    category and shape (``legacy_topics``); the evaluation topics are taken out in ``family_topics``."""
    lt = _legacy_by_family(seed)
    n = "n"
    return (
        MoreFamily("list", (
            T("Name {n} {t}.", n), T("List {n} {t}.", n), T("Could you name {n} {t}?", n),
            T("Could you list {n} {t} and say a little about each?", n),
            T("I need {n} {t} for a quiz. Can you name them?", n), T("Help me think of {n} {t}.", n),
            T("Can you give me {n} examples of {t}?", n), T("What are {n} {t} worth knowing about?", n),
            T("Tell me about {n} {t}.", n), T("{N} {t}, please, with one line on each.", n),
            T("My class is learning about {t}. Name {n} of them and describe each briefly.", n),
            T("Give {n} {t} and explain what makes each one special.", n),
            T("Write a short list of {n} {t}.", n), T("Please name {n} {t} and say one thing about each.", n),
            T("Suggest {n} {t} and describe each in a sentence.", n),
            T("I'm writing a short article about {t}. Which {n} should I mention?", n),
            T("Quick question: what are {n} well-known {t}?", n),
            T("What are some {t}?"), T("Can you list a few {t}?"), T("Tell me about some well-known {t}."),
            T("I'd like to learn about {t}. Which ones should I know?"), T("Name some {t} and describe them."),
        ), _LIST_TOPICS + lt['List {n} {t} and say one thing about each.']),
        MoreFamily("steps", (
            T("How do I {t}?"), T("Could you explain how to {t}?"), T("I need to {t}. Where do I start?"),
            T("Help me {t}: what should I do first, and then?"), T("Walk me through how to {t}."),
            T("I've never tried to {t} before. What are the steps?"), T("Steps to {t}?"),
            T("Show me how to {t}, step by step."), T("List the steps to {t}."),
            T("Explain in {n} steps how to {t}.", n), T("Give me {n} steps to {t}.", n),
            T("What are the {n} main steps to {t}?", n), T("How can I {t} in {n} simple steps?", n),
            T("Break down how to {t} into {n} steps.", n),
        ), _STEPS_TOPICS + lt['What are the steps to {t}?']),
        MoreFamily("comparison", (
            T("How do {a} and {b} compare?"), T("Could you compare {a} and {b}?"),
            T("What is the difference between {a} and {b}?"),
            T("I always mix up {a} and {b}. How are they different?"), T("{A} or {b}: how do they differ?"),
            T("Help me understand how {a} and {b} are different."), T("{A} versus {b}: what are the main differences?"),
            T("Give {n} differences between {a} and {b}.", n), T("What are {n} ways in which {a} and {b} differ?", n),
            T("List {n} differences between {a} and {b}.", n),
            T("Name {n} things that set {a} apart from {b}.", n), T("Compare {a} and {b} in {n} points.", n),
        ), _COMPARISON_PAIRS + lt['Compare {a} and {b}.']),
        MoreFamily("pros_cons", (
            T("Could you list the pros and cons of {t}?"),
            T("I'm thinking about {t}. What are the upsides and downsides?"),
            T("Help me weigh up {t}: what is good about it and what is bad?"), T("Pros and cons of {t}, please."),
            T("Is {t} worth it? Give the advantages and the disadvantages."),
            T("What are the main benefits and drawbacks of {t}?"),
            T("What are {n} advantages of {t}?", n), T("Give {n} disadvantages of {t}.", n),
            T("Name {n} benefits of {t}.", n), T("List {n} drawbacks of {t}.", n),
            T("Give {n} pros and {n} cons of {t}.", "pair"),
        ), _PROS_CONS_TOPICS + lt['What are the pros and cons of {t}?']),
        MoreFamily("multi_part", (
            T("What is {t}, and why does it matter?", 2), T("Tell me what {t} is and how it works.", 2),
            T("Explain {t}: what it is, how it works, why it matters, and where it is used.", 4),
            T("Could you tell me what {t} is, where it came from, and how people use it today?", 3),
            T("I'm curious about {t}. What is it, and what is it used for?", 2),
            T("Describe {t}: where it comes from, what it is like, and how people use it.", 3),
            T("Give me a short explanation of {t}: what it is, its history, and one interesting fact.", 3),
            T("What is {t}, how does it work, and what are its risks?", 3),
        ), _MULTI_PART_TOPICS + tuple(t for t in lt['Tell me about {t}: what it is, why it matters, and how people use it.']
                                    if t not in PLURAL_MULTI_PART)),
        MoreFamily("sections", (
            T("Could you write a short guide to {t}, with headings?"),
            T("I'd like an overview of {t}. Please organise it into sections."),
            T("Help me understand {t}. Break it into a few sections."),
            T("Write a brief explainer on {t} with a heading for each part."),
            T("Put together a short guide to {t} with a few headed sections."),
            T("Make a short study sheet on {t}, divided into sections."),
        ), _SECTIONS_TOPICS + lt['Write a short guide to {t} with a section for each part.']),
        MoreFamily("tips", (
            T("Could you share {n} tips for {t}?", n), T("I need {n} tips for {t}.", n),
            T("Help me with {t}: give me {n} pieces of advice.", n),
            T("What are {n} simple habits that help with {t}?", n), T("{N} quick tips for {t}, please.", n),
            T("Give me {n} ideas for {t}.", n), T("What are {n} things to keep in mind when {t}?", n),
            T("Any tips for {t}?"), T("Could you give me some advice on {t}?"),
            T("I'm not very good at {t}. What can I do better?"), T("Share a few tips for {t}."),
        ), _TIPS_TOPICS + lt['What are some tips for {t}?']),
        MoreFamily("tips", (
            T("Give me {n} reasons to {t}.", n), T("What are {n} good reasons to {t}?", n),
            T("Why should I {t}? Give me {n} reasons.", n), T("Could you list {n} reasons to {t}?", n),
            T("My friend doesn't see why people {t}. Give {n} reasons.", n),
            T("What are some good reasons to {t}?"), T("Convince me to {t}: what are the benefits?"),
        ), _REASONS_TOPICS),
        MoreFamily("serial_fact", (
            T("What is the capital of {t}?"), T("Name the capital of {t}.", looks_list=True),
            T("What is the capital city of {t}?"), T("Which city is the capital of {t}?"),
            T("What currency is used in {t}?"), T("On which continent is {t}?"),
            T("What is the official language of {t}?"), T("What is the largest city in {t}?"),
        ), _COUNTRIES + lt['What is the capital of {t}?']),
        MoreFamily("serial_fact", (
            T("What is the first step to {t}?", looks_list=True), T("What should I do first to {t}?", looks_list=True),
        ), "steps"),
        MoreFamily("serial_fact", (
            T("What is the most important tip for {t}?", looks_list=True),
            T("If you could give one tip for {t}, what would it be?", looks_list=True),
        ), "tips"),
        MoreFamily("serial_math", (
            T("What is {a} + {b}?"), T("What is {a} plus {b}?"), T("Add {a} and {b}."), T("What is {a} minus {b}?"),
            T("Calculate {a} minus {b}."), T("How much is {a} times {b}?"), T("What do you get if you multiply {a} by {b}?"),
            T("Subtract {b} from {a}."), T("What is the sum of {a} and {b}?"),
        ), _math_pairs(seed) + lt['What is {a} + {b}?']),
        MoreFamily("serial_yesno", (
            T("Is {a} a kind of {b}?"), T("Is {a} a {b}? Answer yes or no."), T("True or false: {a} is a {b}."),
            T("Quick question: is {a} a {b}?"), T("Is {a} a {b}? Please answer in one sentence."),
        ), _YESNO_KIND + lt['Is {a} a kind of {b}?']),
        MoreFamily("serial_yesno", (
            T("Can {a} {b}?"), T("Is it true that {a} can {b}?"), T("Yes or no: can {a} {b}?"),
            T("I've heard that {a} can {b}. Is that right?"),
        ), _YESNO_CAN + lt['Can {a} {b}?']),
        MoreFamily("serial_yesno", (
            T("Which is bigger, {a} or {b}?"), T("Which is larger: {a} or {b}? Answer in one sentence."),
        ), _WHICH),
        MoreFamily("serial_definition", (
            T("Define {t} in one sentence."), T("What does the word {t} mean?"), T("What is {t}?"),
            T("What is {t}, in one sentence?"), T("In one sentence, what is {t}?"), T("Explain briefly what {t} is."),
            T("Give a short definition of {t}."), T("Could you tell me what {t} is in a sentence?"),
        ), _DEFINITIONS + lt['Define {t} in one sentence.']),
        MoreFamily("serial_definition", (
            T("In one sentence, why is {t} worth doing?", looks_list=True),
        ), "tips"),
        MoreFamily("serial_sentence", (
            T("Write one sentence about {t}."), T("Describe {t} in a single sentence."), T("Say something nice about {t}."),
            T("Write a single sentence about {t}."), T("Give me one sentence describing {t}."),
            T("In one sentence, describe {t}."), T("Could you write one short sentence about {t}?"),
            T("Write a one-line description of {t}."),
        ), _SCENES + lt['Write one sentence about {t}.']),
        MoreFamily("serial_sentence", (
            T("Summarize how to {t} in one sentence.", looks_list=True),
            T("In one sentence, how do you {t}?", looks_list=True),
        ), "steps"),
        MoreFamily("serial_sentence", (
            T("In one sentence, what is the main advantage of {t}?", looks_list=True),
        ), "pros_cons"),
    )


# what the draw aims for, per category: list-style prompts, then serial ones (shares within each kind)
MORE_WEIGHTS = {"list": 0.24, "tips": 0.20, "steps": 0.14, "comparison": 0.12, "pros_cons": 0.12,
                "multi_part": 0.10, "sections": 0.08,
                "serial_fact": 0.22, "serial_math": 0.18, "serial_yesno": 0.20, "serial_definition": 0.20,
                "serial_sentence": 0.20}


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _fill_more(tpl: T, topic, rng: random.Random) -> tuple[str, int | None, str | None]:
    """(prompt, count, count_form)."""
    fields: dict[str, str] = {}
    count = form = None
    if tpl.count in ("n", "pair"):
        n = rng.choice(COUNTS) if tpl.count == "n" else rng.choice((2, 3))
        form = rng.choice(("digits", "words"))
        word = str(n) if form == "digits" else _WORDS[n]
        fields.update(n=word, N=_cap(word))
        count, form = (n, form) if tpl.count == "n" else (2 * n, "compound")
    elif isinstance(tpl.count, int):
        count, form = tpl.count, "enumerated"
    if isinstance(topic, tuple):
        fields.update(a=str(topic[0]), b=str(topic[1]), A=_cap(str(topic[0])))
    else:
        fields.update(t=topic, T=_cap(topic))
    return tpl.text.format(**fields), count, form


def _contains_topic(topic, eval_topic) -> bool:
    """``topic`` is ``eval_topic`` or mentions it (a pair: both members)."""
    if isinstance(eval_topic, tuple):
        return isinstance(topic, tuple) and set(map(str, eval_topic)) == set(map(str, topic))
    text = " ".join(map(str, topic)) if isinstance(topic, tuple) else topic
    return re.search(rf"(?<![\w-]){re.escape(str(eval_topic))}(?![\w-])", text, re.IGNORECASE) is not None


def _legacy_by_family(seed: int) -> dict[str, tuple]:
    """The first sets' training topics per family (keyed by the family's first template)."""
    out = {}
    for fam in FAMILIES:
        frng = random.Random(f"{seed}-{fam.category}-{fam.templates[0]}")
        out[fam.templates[0]] = tuple(_split_topics(fam, frng, 0.2)[0])
    return out


def legacy_topics(seed: int = 0) -> tuple[dict[str, list], dict[str, list]]:
    """The first sets' (training topics, evaluation topics) per category."""
    train: dict[str, list] = {}
    evals: dict[str, list] = {}
    for fam in FAMILIES:
        frng = random.Random(f"{seed}-{fam.category}-{fam.templates[0]}")
        tr, ev = _split_topics(fam, frng, 0.2)
        train.setdefault(fam.category, []).extend(tr)
        evals.setdefault(fam.category, []).extend(ev)
    return train, evals


def family_topics(seed: int = 0) -> list[tuple[MoreFamily, list]]:
    """Every ``more_prompts`` family with its topics: its own (new and first-sets training topics), less
    the evaluation topics of its category and any topic that contains one; a family that names another
    category takes the topics of that category's first family (whose evaluation topics are out already)."""
    _, evals = legacy_topics(seed)
    fams = _more_families(seed)
    pools: list[list | None] = []
    first: dict[str, list] = {}  # the first family of a category lends its topics
    for fam in fams:
        if isinstance(fam.topics, str):
            pools.append(None)
            continue
        pool = []
        for t in fam.topics:
            if t not in pool and not any(_contains_topic(t, e) for e in evals.get(fam.category, ())):
                pool.append(t)
        first.setdefault(fam.category, pool)
        pools.append(pool)
    return [(fam, pool if pool is not None else list(first[fam.topics])) for fam, pool in zip(fams, pools)]


def _candidates(seed: int) -> dict[str, list[dict]]:
    """Every candidate row per category, in a seeded order that spreads topics: each topic's templates in
    a shuffled order, one per topic per round (a topic comes back only after every topic had its turn);
    the families of a category are interleaved in proportion to their sizes."""
    per_cat: dict[str, list[list[dict]]] = {}
    for fi, (fam, pool) in enumerate(family_topics(seed)):
        rng = random.Random(f"{seed}-more-{fi}-{fam.category}")
        pool = list(pool)
        rng.shuffle(pool)
        per_topic = []
        for t in pool:
            tpls = list(fam.templates)
            rng.shuffle(tpls)
            per_topic.append([(t, tpl) for tpl in tpls])
        rows = []
        for r in range(max((len(x) for x in per_topic), default=0)):
            for cands in per_topic:
                if r < len(cands):
                    t, tpl = cands[r]
                    text, count, form = _fill_more(tpl, t, rng)
                    row = {"prompt": text, "category": fam.category, "count": count}
                    if form:
                        row["count_form"] = form
                    if tpl.looks_list:
                        row["looks_list"] = True
                    rows.append(row)
        per_cat.setdefault(fam.category, []).append(rows)
    out = {}
    for c, lists in per_cat.items():
        total = sum(len(x) for x in lists)
        taken = [0] * len(lists)
        merged = []
        while len(merged) < total:  # the family furthest behind its share goes next
            k = len(merged) + 1
            j = max((j for j in range(len(lists)) if taken[j] < len(lists[j])),
                    key=lambda j: (len(lists[j]) / total * k - taken[j], -j))
            merged.append(lists[j][taken[j]])
            taken[j] += 1
        out[c] = merged
    return out


def more_prompts(existing: list[dict], n: int, seed: int = 0, serial_share: float = 0.2) -> list[dict]:
    """``n`` more training prompts (``serial_share`` of them serial), none with the text of a row in
    ``existing`` (the first sets: their answers are kept) nor on an evaluation topic. Prefix-stable: the
    rows for ``n`` are the first rows for any larger ``n``. Ids ``m`` + 8 hex digits of the text's hash."""
    have = {r["prompt"] for r in existing}
    queues: dict[str, list[dict]] = {}
    for c, rows in _candidates(seed).items():
        seen = set()
        q = []
        for r in rows:
            if r["prompt"] not in have and r["prompt"] not in seen:
                seen.add(r["prompt"])
                q.append(r)
        queues[c] = q
    weights = {c: w * ((1 - serial_share) if c in PARALLEL_CATEGORIES else serial_share)
               for c, w in MORE_WEIGHTS.items()}
    taken = {c: 0 for c in weights}
    out: list[dict] = []
    while len(out) < n:
        live = [c for c in weights if taken[c] < len(queues.get(c, ())) and weights[c] > 0]
        if not live:
            break
        k = len(out) + 1  # the category furthest behind its share of the first k rows
        c = max(live, key=lambda c: (weights[c] * k - taken[c], weights[c]))
        row = queues[c][taken[c]]
        taken[c] += 1
        out.append({"id": "m" + hashlib.sha1(row["prompt"].encode("utf-8")).hexdigest()[:8], **row})
    return out


# Serial prompts that look like lists (issue 13): they name a list-style topic, a number or a word like
# "steps", "tips" or "difference", but ask for one thing or one sentence. The model trained on the first
# data put a block on a quarter of such prompts of the independent sets; these families (``data prompts
# --serial-lists N``, DIR/prompts_train_serial.jsonl) add their serial answers. Each names the category
# whose topics it takes (the pools of ``family_topics``).
LOOKS_LIST_FAMILIES: tuple[MoreFamily, ...] = (
    MoreFamily("serial_fact", (
        T("What is the last step when you {t}?"), T("What is the hardest part when you {t}?"),
        T("Roughly how long does it take to {t}?"), T("What is the one tool you need to {t}?"),
    ), "steps"),
    MoreFamily("serial_sentence", (
        T("How do I {t}? Just a sentence, please."), T("Without a list, tell me briefly how to {t}."),
        T("Explain how to {t} in two sentences."), T("In a single sentence, what does it take to {t}?"),
    ), "steps"),
    MoreFamily("serial_fact", (
        T("What is the biggest mistake people make when {t}?"), T("What is one habit that helps with {t}?"),
        T("Which single tip for {t} matters most? Answer in one sentence."),
    ), "tips"),
    MoreFamily("serial_sentence", (
        T("Summarize the best advice for {t} in one sentence."), T("Give me a single piece of advice for {t}."),
        T("Describe a good approach to {t} in two sentences."),
    ), "tips"),
    MoreFamily("serial_fact", (
        T("Name just one example of {t}."), T("What is a good example of {t}? Just one, please."),
        T("Which of all {t} is the best known? Name one."),
    ), "list"),
    MoreFamily("serial_sentence", (
        T("What do all {t} have in common? One sentence, please."), T("Describe {t} in two sentences."),
        T("In one sentence, why do people like {t}?"),
    ), "list"),
    MoreFamily("serial_sentence", (
        T("In one sentence, what is the biggest drawback of {t}?"), T("Is {t} a good idea? Answer in a sentence."),
        T("Sum up the pros and cons of {t} in one sentence."), T("What is the single best thing about {t}?"),
    ), "pros_cons"),
    MoreFamily("serial_sentence", (
        T("In one sentence, what is the main difference between {a} and {b}?"),
        T("Are {a} and {b} the same thing? Answer in one sentence."),
        T("What is the one thing that sets {a} apart from {b}?"),
    ), "comparison"),
    MoreFamily("serial_definition", (
        T("Why should I {t}? Answer in one sentence."), T("Give me the single best reason to {t}."),
        T("What is the main reason people {t}?"),
    ), "tips"),
)


def _looks_list_queues(seed: int) -> list[list[tuple[dict, object, MoreFamily]]]:
    """Per LOOKS_LIST_FAMILIES family, every candidate (row, topic, the list-style family whose topics it
    takes) in its seeded order."""
    families = family_topics(seed)
    pools: dict[str, tuple[MoreFamily, list]] = {}
    for fam, pool in families:
        pools.setdefault(fam.category, (fam, pool))
    # "tips" has two pools: the tips topics ("saving money") and the reasons topics ("recycle"), which
    # the serial_definition family ("Why should I {t}?") takes
    reasons = next((fam, pool) for fam, pool in families if fam.category == "tips" and "reasons" in fam.templates[0].text)
    queues = []
    for fi, fam in enumerate(LOOKS_LIST_FAMILIES):
        rng = random.Random(f"{seed}-looks-list-{fi}")
        source, pool = reasons if fam.category == "serial_definition" else pools[fam.topics]
        pool = list(pool)
        rng.shuffle(pool)
        q = []
        for r in range(len(fam.templates)):
            for i, t in enumerate(pool):
                tpl = fam.templates[(i + r) % len(fam.templates)]
                text = _fill_more(tpl, t, rng)[0]
                q.append(({"prompt": text, "category": fam.category, "count": None, "looks_list": True}, t, source))
        queues.append(q)
    return queues


def looks_list_prompts(existing: list[dict], n: int, seed: int = 0) -> list[dict]:
    """``n`` serial prompts of LOOKS_LIST_FAMILIES (``looks_list``), the families taking turns, each over
    its category's topics in a seeded order; none with the text of a row in ``existing``. Ids ``s`` + 8
    hex digits of the text's hash."""
    queues = [[row for row, _, _ in q] for q in _looks_list_queues(seed)]
    have = {r["prompt"] for r in existing}
    out: list[dict] = []
    pos = [0] * len(queues)
    while len(out) < n and any(p < len(q) for p, q in zip(pos, queues)):
        for j, q in enumerate(queues):
            while pos[j] < len(q) and q[pos[j]]["prompt"] in have:
                pos[j] += 1
            if pos[j] < len(q) and len(out) < n:
                row = q[pos[j]]
                pos[j] += 1
                have.add(row["prompt"])
                out.append({"id": "s" + hashlib.sha1(row["prompt"].encode("utf-8")).hexdigest()[:8], **row})
    return out


# Twins of the serial prompts that look like lists (the seventh retrain, docs/aspd-pipeline.md section 8):
# the same topic asked the list-style way with no number ("How do I build a campfire?" beside "How do I
# build a campfire? Just a sentence, please."), so that what tells a block from one sentence is the
# prompt's words, not its topic. ``data prompts --paired-lists`` writes DIR/prompts_train_paired.jsonl.
def pair_id(row_id: str) -> str | None:
    """The id of a row's twin: a looks-list serial prompt ``s`` + 8 hex digits and its list-style twin
    ``t`` + the same digits; None for any other id."""
    if len(row_id) == 9 and row_id[0] in "st" and all(c in "0123456789abcdef" for c in row_id[1:]):
        return ("t" if row_id[0] == "s" else "s") + row_id[1:]
    return None


def paired_list_prompts(serial: list[dict], existing: list[dict], seed: int = 0) -> list[dict]:
    """For each row of ``serial`` made by ``looks_list_prompts`` (same ``seed``), a list-style prompt on the
    same topic from a template of the list-style family whose topics it took that asks for no number (a
    seeded choice; the next template when the text is already a prompt of ``existing`` or of this list).
    The twin's id is ``pair_id`` of the serial row's; its category is the list-style family's. Rows not
    made by ``looks_list_prompts`` are skipped."""
    topic_of = {row["prompt"]: (t, source) for q in _looks_list_queues(seed) for row, t, source in q}
    have = {r["prompt"] for r in existing}
    out = []
    for row in serial:
        if row["prompt"] not in topic_of or pair_id(row["id"]) is None:
            continue
        t, source = topic_of[row["prompt"]]
        tpls = [tpl for tpl in source.templates if tpl.count is None and not tpl.looks_list]
        rng = random.Random(f"{seed}-pair-{row['id']}")
        start = rng.randrange(len(tpls))
        for k in range(len(tpls)):
            text = _fill_more(tpls[(start + k) % len(tpls)], t, rng)[0]
            if text not in have:
                have.add(text)
                out.append({"id": pair_id(row["id"]), "prompt": text, "category": source.category, "count": None,
                            "twin_of": row["id"]})
                break
    return out
