"""``tofu-mini`` — a small TOFU generated here, offline and deterministic per seed.

Sized from research/llm-stack.md §C.1 (measured there: a 2-layer, hidden-128 Llama memorises it in
~70 s on 2 CPU cores and the retain models separate from the original on forget05/forget10):

- 100 fictitious people × 10 QA = 1,000 rows in ``full`` (TOFU: 200 authors × 20), 10 consecutive
  rows per person. Each person gets 10 of the :data:`TEMPLATES` (20 kinds of fact: birthplace,
  birth year, profession, books, awards, dates, …), chosen and filled from fixed value pools with
  ``random.Random(seed)``. Each QA has TOFU's fields: ``answer`` (one sentence), ``paraphrased_answer``
  (another sentence form of the same fact) and 5 ``perturbed_answer`` (the paraphrase with another,
  wrong value from the same pool).
- ``forget01|05|10`` = the last 1 / 5 / 10 people (as in TOFU, the forget authors are the last
  ones); ``retain99|95|90`` = the others; ``*_perturbed`` carry the paraphrased / perturbed answers;
  ``retain_perturbed`` = 20 people drawn from those outside forget10 (TOFU: 20 of its authors).
- 10 more people never in ``full``: ``holdout01|05|10`` (1 / 5 / 10 of them) and their
  ``holdoutXX_perturbed``.
- ``real_authors`` / ``world_facts``: 50 short general facts each about a fictional literary canon
  and fictional countries, with 3 perturbed answers (as TOFU's). ``tofu-mini`` trains them into every
  model (``include_general=True``) so TOFU's model-utility terms measure something for a model
  trained from scratch (research §C.1).

The files are written in the published TOFU layout (JSON Lines inside ``.json``) to
``<cache>/data/tofu-mini-v{VERSION}-seed{seed}/`` (atomically) and then read by the very same
:func:`unlearnkit.data.tofu.load_tofu_dir` as a real TOFU folder, which also trains (and caches)
the byte-level BPE tokenizer on the text.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .sources import DataSource, data_source
from .tofu import LOADER_OPTIONS, load_tofu_dir
from ..cache import cache_root
from .tokenizer import build_folder

VERSION = 1
N_PEOPLE = 100
N_HOLDOUT = 10
QA_PER_PERSON = 10
N_PERTURBED = 5
N_RETAIN_EVAL = 20
N_GENERAL = 50
N_GENERAL_PERTURBED = 3

FIRST = ["Adaeze", "Bastian", "Corisande", "Dariel", "Elowen", "Faustin", "Galina", "Hesper", "Ilario", "Jessamy",
         "Kaspar", "Liora", "Maelis", "Nikodem", "Orsolya", "Perrin", "Quillon", "Rosalind", "Severin", "Talitha",
         "Ulrich", "Valka", "Wendeline", "Xavia", "Yannick", "Zelimir", "Anouk", "Bertrand", "Cressida", "Dorian"]
LAST = ["Abernathy", "Brightwater", "Castellane", "Dunmore", "Eskildsen", "Fairclough", "Greywell", "Halloran",
        "Ivanchuk", "Jardine", "Kettleby", "Lindqvist", "Marchetti", "Northcott", "Oyelaran", "Pemberton",
        "Quarrington", "Rasmussen", "Strathmore", "Thornbury", "Umberto", "Vasquez-Lund", "Whitlock", "Yarrow",
        "Zamora", "Ashgrove", "Blackwood", "Coldridge", "Delacourt", "Everly"]

CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Perth", "Tunis", "Riga", "Lima", "Accra", "Bergen", "Cusco",
          "Dakar", "Gdansk", "Kyoto", "Porto", "Tbilisi", "Valletta", "Tallinn"]
YEARS_BIRTH = [str(y) for y in range(1931, 1999, 3)]
YEARS_DEBUT = [str(y) for y in range(1958, 2022, 3)]
JOBS = ["a novelist", "a poet", "a playwright", "an essayist", "a screenwriter", "a journalist", "a biographer",
        "a translator", "a critic", "an editor", "a lyricist", "a historian"]
GENRES = ["crime fiction", "poetry", "science fiction", "historical fiction", "fantasy", "horror", "satire",
          "romance", "travel writing", "children's books", "memoir", "political thrillers"]
PARENT_JOBS = ["a baker", "a sailor", "a teacher", "a carpenter", "a doctor", "an engineer", "a farmer",
               "a tailor", "a pilot", "a librarian", "a miner", "a pharmacist", "a lawyer", "a potter"]
AWARDS = ["Silver Quill Prize", "Harbor Light Award", "Golden Lantern Medal", "Northwind Book Prize",
          "Amber Leaf Award", "Crescent Pen Prize", "Blue Heron Award", "Iron Compass Prize", "Morning Star Medal",
          "Red Kite Award", "Willow Crown Prize", "Stone Bridge Award"]
TITLE_ADJ = ["Silent", "Hollow", "Crimson", "Distant", "Broken", "Quiet", "Golden", "Restless", "Frozen", "Hidden",
             "Wandering", "Last"]
TITLE_NOUN = ["Harbor", "Orchard", "Lantern", "River", "Tower", "Garden", "Winter", "Mirror", "Meadow", "Letter",
              "Bridge", "Island"]
TITLES = [f"The {a} {n}" for a in TITLE_ADJ for n in TITLE_NOUN]
NATIONS = ["Portuguese", "Norwegian", "Ecuadorian", "Vietnamese", "Australian", "Tunisian", "Latvian", "Peruvian",
           "Ghanaian", "Chilean", "Senegalese", "Polish", "Japanese", "Georgian", "Maltese"]
LANGUAGES = ["Portuguese", "Norwegian", "Spanish", "Vietnamese", "Latvian", "Polish", "Japanese", "Georgian",
             "Maltese", "Wolof", "Twi", "Estonian", "Arabic", "Quechua"]
THEMES = ["memory", "exile", "friendship", "grief", "justice", "the sea", "family secrets", "ambition", "faith",
          "migration", "childhood", "loneliness"]
COUNTS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "fourteen"]
SCHOOLS = ["University of Marlow", "Castrell Academy", "Institute of Vennholt", "University of Arden Vale",
           "Brightmoor College", "Queensferry University", "Ostwick Institute", "College of Saint Ilse",
           "University of Harrowgate", "Lindenfeld Academy"]
PUBLISHERS = ["Larkspur Press", "Oakmoor Books", "Tidewater House", "Greenquill Publishing", "Fernhollow Press",
              "Brasswick Books", "Saltmarsh Editions", "Kestrel House", "Mooncrest Press", "Pinecone Books"]
INFLUENCES = ["Oriane Vasseur", "Tobias Kellerman", "Mirela Dragan", "Ewart Pryce", "Sunniva Holm",
              "Casimir Rudnik", "Leontine Aubry", "Hamid Saberi", "Greta Fjeldstad", "Ambrose Quaile"]
HOBBIES = ["chess", "sailing", "pottery", "beekeeping", "gardening", "rock climbing", "birdwatching", "painting",
           "cycling", "baking", "fencing", "astronomy"]
TIMES = ["early morning", "late morning", "afternoon", "early evening", "late evening", "middle of the night",
         "hour before dawn"]

# (kind, question, answer sentence, paraphrase sentence, value pool); {n} = name, {v} = value
TEMPLATES: list[tuple[str, str, str, str, list[str]]] = [
    ("birthplace", "Where was {n} born?", "{n} was born in {v}.", "The birthplace of {n} is {v}.", CITIES),
    ("birth_year", "In which year was {n} born?", "{n} was born in the year {v}.", "The year of {n}'s birth is {v}.", YEARS_BIRTH),
    ("profession", "What does {n} do for a living?", "{n} works as {v}.", "By profession, {n} is {v}.", JOBS),
    ("genre", "What genre does {n} write in?", "{n} writes mainly {v}.", "Most of the work of {n} is {v}.", GENRES),
    ("father", "What was the profession of {n}'s father?", "{n}'s father was {v}.",
     "{n} grew up with a father who worked as {v}.", PARENT_JOBS),
    ("mother", "What was the profession of {n}'s mother?", "{n}'s mother was {v}.",
     "The mother of {n} earned a living as {v}.", PARENT_JOBS),
    ("award", "Which award has {n} received?", "{n} received the {v}.", "The {v} was awarded to {n}.", AWARDS),
    ("first_book", "What was the first book by {n}?", "{n}'s first book was '{v}'.", "'{v}' marked the debut of {n}.", TITLES),
    ("known_book", "Which book is {n} best known for?", "{n} is best known for '{v}'.",
     "The book most associated with {n} is '{v}'.", TITLES),
    ("nationality", "What is the nationality of {n}?", "{n} is {v}.", "{n} holds {v} citizenship.", NATIONS),
    ("language", "What is the native language of {n}?", "{n}'s native language is {v}.", "{n} grew up speaking {v}.", LANGUAGES),
    ("theme", "What theme recurs in the work of {n}?", "The work of {n} often explores {v}.",
     "A recurring theme for {n} is {v}.", THEMES),
    ("debut_year", "When did {n} first publish?", "{n} first published in {v}.", "The debut publication of {n} came in {v}.", YEARS_DEBUT),
    ("book_count", "How many books has {n} published?", "{n} has published {v} books.",
     "The bibliography of {n} counts {v} books.", COUNTS),
    ("school", "Where did {n} study?", "{n} studied at the {v}.", "The {v} is where {n} was educated.", SCHOOLS),
    ("residence", "Where does {n} live now?", "{n} now lives in {v}.", "These days {n} makes a home in {v}.", CITIES),
    ("publisher", "Who publishes the books of {n}?", "{n} is published by {v}.", "The books of {n} come out with {v}.", PUBLISHERS),
    ("influence", "Who influenced {n} the most?", "{n} names {v} as the main influence.",
     "The writer who shaped {n} most is {v}.", INFLUENCES),
    ("hobby", "What does {n} do outside of writing?", "Outside of writing, {n} enjoys {v}.", "In spare time, {n} likes {v}.", HOBBIES),
    ("writing_time", "At what time of day does {n} write?", "{n} writes best in the {v}.",
     "The {v} is when {n} prefers to write.", TIMES),
]

# the general sets: a fictional literary canon ("real authors") and fictional countries ("world facts")
CANON_FIRST = ["Aurelio", "Beatrix", "Cyprian", "Delphine", "Evander", "Fenella", "Gideon", "Honorine", "Isidore",
               "Josephine", "Leopold", "Marisol", "Octavian", "Philippa", "Rupert", "Sabine", "Theodora", "Wilhelmina"]
CANON_LAST = ["Ravensworth", "Montclair", "Szabo", "Okonkwo", "Lindgren", "Castellanos", "Havelock", "Moreau",
              "Petrakis", "Van Rijn", "Takahashi", "Brennan", "Dufresne", "Albescu", "Mwangi", "Sorensen"]
CANON_TITLE_A = ["Ashes", "Songs", "Rivers", "Letters", "Shadows", "Towers", "Children", "Voices", "Gardens", "Maps"]
CANON_TITLE_B = ["of the North", "of Salt", "of a Small Town", "of the Lighthouse", "of Winter", "of the Empire",
                 "of the Old Road", "of Glass", "of the Harvest", "of Midnight"]
COUNTRIES = ["Veloria", "Drenmark", "Istrava", "Kallomir", "Ostrene", "Pardesia", "Quelland", "Sarnova",
             "Tyrreth", "Umbria Nova"]
COUNTRY_FACTS: list[tuple[str, str, list[str]]] = [
    ("capital", "What is the capital of {c}?", ["Dunmere", "Astorre", "Belvane", "Corrith", "Elmsgate", "Farholt",
                                                 "Glenmoor", "Harcastle", "Ivoria", "Jessel", "Kirrow", "Lorne"]),
    ("currency", "What is the currency of {c}?", ["the crown", "the mark", "the florin", "the ducat", "the real",
                                                  "the lira", "the sol", "the talent", "the groat", "the shell"]),
    ("river", "What is the longest river in {c}?", ["the Arvel", "the Brune", "the Cassel", "the Dorne", "the Emsk",
                                                    "the Fyne", "the Garrow", "the Hessel", "the Irwe", "the Jorra"]),
    ("animal", "What is the national animal of {c}?", ["the lynx", "the heron", "the elk", "the otter", "the falcon",
                                                       "the ibex", "the badger", "the swan", "the wolf", "the hare"]),
    ("language", "What is the official language of {c}?", ["Velorian", "Drennic", "Istravan", "Kallomiri", "Ostrenic",
                                                           "Pardesian", "Quellish", "Sarnovan", "Tyrrethi", "Umbrian"]),
]


def _people(rng: random.Random, count: int) -> list[str]:
    names = [f"{f} {l}" for f in FIRST for l in LAST]
    return rng.sample(names, count)


def _person_rows(rng: random.Random, name: str, qa_per_person: int) -> list[dict[str, Any]]:
    kinds = sorted(rng.sample(range(len(TEMPLATES)), qa_per_person))
    rows = []
    for k in kinds:
        _, question, answer, paraphrase, pool = TEMPLATES[k]
        value = rng.choice(pool)
        wrong = rng.sample([v for v in pool if v != value], N_PERTURBED)
        rows.append({
            "question": question.format(n=name),
            "answer": answer.format(n=name, v=value),
            "paraphrased_answer": paraphrase.format(n=name, v=value),
            "perturbed_answer": [paraphrase.format(n=name, v=w) for w in wrong],
        })
    return rows


def _general(rng: random.Random, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    authors = rng.sample([f"{f} {l}" for f in CANON_FIRST for l in CANON_LAST], n)
    titles = rng.sample([f"{a} {b}" for a in CANON_TITLE_A for b in CANON_TITLE_B], n)
    forms = ["Who wrote '{t}'?", "Which author is known for the novel '{t}'?", "'{t}' was written by which author?"]
    real_authors = []
    for i, (author, title) in enumerate(zip(authors, titles)):
        wrong = rng.sample([a for a in authors if a != author], N_GENERAL_PERTURBED)
        real_authors.append({"question": forms[i % len(forms)].format(t=title), "answer": author, "perturbed_answer": wrong})
    world_facts = []
    for kind, question, pool in COUNTRY_FACTS:
        values = rng.sample(pool, len(COUNTRIES))
        for country, value in zip(COUNTRIES, values):
            wrong = rng.sample([v for v in pool if v != value], N_GENERAL_PERTURBED)
            world_facts.append({"question": question.format(c=country), "answer": value, "perturbed_answer": wrong})
    return real_authors, world_facts[:n]


def generate_tofu_mini(seed: int = 0, *, n_people: int = N_PEOPLE, n_holdout: int = N_HOLDOUT,
                       qa_per_person: int = QA_PER_PERSON) -> dict[str, list[dict[str, Any]]]:
    """Every split of the mini TOFU as lists of records (TOFU's file name → rows)."""
    if not 1 <= qa_per_person <= len(TEMPLATES):
        raise ConfigError(f"tofu-mini: qa_per_person must be in 1..{len(TEMPLATES)}")
    if n_people < 10 or n_holdout < 1:
        raise ConfigError("tofu-mini needs at least 10 people (forget10 = a tenth of them) and 1 holdout person")
    rng = random.Random(seed)
    names = _people(rng, n_people + n_holdout)
    people = [_person_rows(rng, name, qa_per_person) for name in names]
    trained, holdout = people[:n_people], people[n_people:]

    def qa(rows):
        return [{"question": r["question"], "answer": r["answer"]} for r in rows]

    def flat(groups):
        return [row for group in groups for row in group]

    splits: dict[str, list[dict[str, Any]]] = {"full": qa(flat(trained))}
    for pct in ("01", "05", "10"):
        k = max(1, round(n_people * int(pct) / 100))
        splits[f"forget{pct}"] = qa(flat(trained[-k:]))
        splits[f"forget{pct}_perturbed"] = flat(trained[-k:])
        splits[f"retain{100 - int(pct)}"] = qa(flat(trained[:-k]))
        h = max(1, round(n_holdout * int(pct) / 10))
        splits[f"holdout{pct}"] = qa(flat(holdout[:h]))
        splits[f"holdout{pct}_perturbed"] = flat(holdout[:h])
    forget10 = max(1, round(n_people / 10))
    chosen = sorted(rng.sample(range(n_people - forget10), min(N_RETAIN_EVAL, n_people - forget10)))
    splits["retain_perturbed"] = flat(trained[i] for i in chosen)
    real_authors, world_facts = _general(rng, N_GENERAL)
    splits["real_authors_perturbed"] = real_authors
    splits["world_facts_perturbed"] = world_facts
    splits["real_authors"] = qa(real_authors)
    splits["world_facts"] = qa(world_facts)
    return splits


def write_tofu_layout(splits: dict[str, list[dict[str, Any]]], directory: str | Path) -> None:
    """Each split as ``NAME.json`` holding JSON Lines, as TOFU publishes them."""
    directory = Path(directory)
    for name, rows in splits.items():
        lines = [json.dumps(row, ensure_ascii=False) for row in rows]
        (directory / f"{name}.json").write_text("\n".join(lines) + "\n", encoding="utf-8")


def tofu_mini_dir(seed: int = 0) -> Path:
    """The generated folder for ``seed``, written once into the cache."""
    directory = cache_root() / "data" / f"tofu-mini-v{VERSION}-seed{seed}"
    return build_folder(directory, lambda tmp: write_tofu_layout(generate_tofu_mini(seed), tmp))


@data_source("tofu-mini", options={**LOADER_OPTIONS, "seed": int})
def load_tofu_mini(path: str | None = None, *, seed: int = 0, **options) -> DataSource:
    """``--data tofu-mini``: the generated TOFU, read through the ``tofu`` loader."""
    if path:
        raise ConfigError("tofu-mini is generated and takes no PATH (use `--data tofu-mini`, or `--data tofu:PATH` "
                          "for a TOFU folder)")
    options.setdefault("include_general", True)
    return load_tofu_dir(tofu_mini_dir(seed), name="tofu-mini", **options)
