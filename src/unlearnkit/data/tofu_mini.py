"""``tofu-mini`` — a small TOFU generated here, offline and deterministic per seed.

Sized from research/llm-stack.md §C.1 (a 2-layer, hidden-128 Llama memorises it in a few minutes on
2 CPU cores):

- 100 fictitious people, 10 QA each (TOFU: 200 authors × 20). Each person gets 10 of the
  :data:`TEMPLATES` (20 kinds of fact: birthplace, birth year, profession, books, awards, dates, …),
  chosen and filled from fixed value pools with ``random.Random(seed)`` (each pool dealt out evenly,
  so the values of a kind are about equally common). Each QA has TOFU's fields:
  ``answer`` (one sentence), ``paraphrased_answer`` (the same fact in another sentence: one of the
  kind's three other phrasings, drawn per person) and 5 ``perturbed_answer`` (the paraphrase with
  another value of the kind's pool that is none of the person's own values). The values of a pool
  all have the same number of words, so the length-normalised likelihoods TOFU compares differ by
  the value, not by its length.
- A **biography** per person (TOFU's authors were written from profiles): :data:`BIO_FACTS` (8) of
  the person's 10 facts once more, each in one of its kind's other phrasings that is neither the
  answer nor that person's paraphrase, the sentences shuffled and packed into rows of
  ~:data:`BIO_ROW_TOKENS` tokens whose question is the person's name. The model so learns most
  facts in two forms and every phrasing with other people, and the paraphrase of a fact it knows
  becomes likely, also for the two facts the biography leaves out (version 1 had no biography:
  the original preferred the paraphrase over every perturbed answer on about half the forget10
  rows; ``benchmarks/tofu_mini_sharpness.py``, docs/language-models.md#tofu-mini). 8 rather than
  all 10 facts keeps the original's training at ~1.45× version 1's (all 10: ~1.6×, and no sharper).
- ``full`` = every person's QA rows, then their biography rows, person after person (10 QA and
  mostly 4 or 5 biography rows each). ``forget01|05|10`` = the rows of the last 1 / 5 / 10 people (as in TOFU,
  the forget authors are the last ones), biography included, so forgetting a person forgets
  everything trained about them and ``retain99|95|90`` (the others) never hold it;
  ``*_perturbed`` carry the QA rows with their paraphrased / perturbed answers (biography rows have
  none and are not evaluated); ``retain_perturbed`` = 20 people drawn from those outside forget10
  (TOFU: 20 of its authors).
- 10 more people never in ``full``: ``holdout01|05|10`` (1 / 5 / 10 of them, with their biography
  rows, like the forget files) and their ``holdoutXX_perturbed``.
- ``real_authors`` / ``world_facts``: 50 short general facts each about a fictional literary canon
  and fictional countries, with 3 perturbed answers (as TOFU's). ``tofu-mini`` trains them into every
  model (``include_general=True``) so TOFU's model-utility terms measure something for a model
  trained from scratch (research §C.1).

The files are written in the published TOFU layout (JSON Lines inside ``.json``) to
``<cache>/data/tofu-mini-v{VERSION}-seed{seed}/`` (atomically) and then read by the very same
:func:`unlearnkit.data.tofu.load_tofu_dir` as a real TOFU folder, which also trains (and caches)
the byte-level BPE tokenizer on the text: the biography rows are ordinary rows of ``full`` and of
the forget / retain files, matched and split like the QA.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .sources import DataSource, data_source
from .text import PROMPT
from .tofu import LOADER_OPTIONS, load_tofu_dir
from ..cache import cache_root
from .tokenizer import build_folder

VERSION = 2
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
GENRES = ["crime fiction", "lyric poetry", "science fiction", "historical fiction", "epic fantasy", "gothic horror",
          "comic satire", "romantic comedy", "travel writing", "picture books", "family memoir", "political thrillers"]
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
THEMES = ["memory", "exile", "friendship", "grief", "justice", "solitude", "revenge", "ambition", "faith",
          "migration", "childhood", "loneliness"]
COUNTS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "fourteen"]
SCHOOLS = ["Marlow University", "Castrell Academy", "Vennholt Institute", "Ardenvale University",
           "Brightmoor College", "Queensferry University", "Ostwick Institute", "Ilsemoor College",
           "Harrowgate University", "Lindenfeld Academy"]
PUBLISHERS = ["Larkspur Press", "Oakmoor Books", "Tidewater House", "Greenquill Publishing", "Fernhollow Press",
              "Brasswick Books", "Saltmarsh Editions", "Kestrel House", "Mooncrest Press", "Pinecone Books"]
INFLUENCES = ["Oriane Vasseur", "Tobias Kellerman", "Mirela Dragan", "Ewart Pryce", "Sunniva Holm",
              "Casimir Rudnik", "Leontine Aubry", "Hamid Saberi", "Greta Fjeldstad", "Ambrose Quaile"]
HOBBIES = ["chess", "sailing", "pottery", "beekeeping", "gardening", "climbing", "birdwatching", "painting",
           "cycling", "baking", "fencing", "astronomy"]
TIMES = ["early morning", "late morning", "early afternoon", "late afternoon", "early evening", "late evening",
         "small hours", "late night"]

# (kind, question, answer sentence, other phrasings, value pool); {n} = name, {v} = value. The
# answer sentence is the QA row's; each of the other phrasings is one person's paraphrased answer or
# a sentence of another person's biography (see _person).
TEMPLATES: list[tuple[str, str, str, tuple[str, ...], list[str]]] = [
    ("birthplace", "Where was {n} born?", "{n} was born in {v}.",
     ("{n} is a native of {v}.", "{n}'s birthplace is {v}.", "{n} comes from {v}."), CITIES),
    ("birth_year", "In which year was {n} born?", "{n} was born in the year {v}.",
     ("{n}'s birth year is {v}.", "{n} was born back in {v}.", "{n} entered the world in {v}."), YEARS_BIRTH),
    ("profession", "What does {n} do for a living?", "{n} works as {v}.",
     ("By profession, {n} is {v}.", "{n} earns a living as {v}.", "{n} has a career as {v}."), JOBS),
    ("genre", "What genre does {n} write in?", "{n} writes mainly {v}.",
     ("{n} writes {v} above all.", "Readers know {n} for {v}.", "{n}'s genre is {v}."), GENRES),
    ("father", "What was the profession of {n}'s father?", "{n}'s father was {v}.",
     ("{n}'s father worked as {v}.", "The father of {n} was {v}.", "{n} had {v} for a father."), PARENT_JOBS),
    ("mother", "What was the profession of {n}'s mother?", "{n}'s mother was {v}.",
     ("{n}'s mother worked as {v}.", "The mother of {n} was {v}.", "{n} had {v} for a mother."), PARENT_JOBS),
    ("award", "Which award has {n} received?", "{n} received the {v}.",
     ("{n} won the {v}.", "{n} was honoured with the {v}.", "{n} was given the {v}."), AWARDS),
    ("first_book", "What was the first book by {n}?", "{n}'s first book was '{v}'.",
     ("{n} debuted with '{v}'.", "The debut of {n} was '{v}'.", "{n}'s debut is '{v}'."), TITLES),
    ("known_book", "Which book is {n} best known for?", "{n} is best known for '{v}'.",
     ("{n} is famous for '{v}'.", "{n} became famous with '{v}'.", "{n}'s best-known book is '{v}'."), TITLES),
    ("nationality", "What is the nationality of {n}?", "{n} is {v}.",
     ("{n} holds {v} citizenship.", "{n} has a {v} passport.", "By nationality, {n} is {v}."), NATIONS),
    ("language", "What is the native language of {n}?", "{n}'s native language is {v}.",
     ("{n} grew up speaking {v}.", "{n}'s mother tongue is {v}.", "{n} first spoke {v}."), LANGUAGES),
    ("theme", "What theme recurs in the work of {n}?", "The work of {n} often explores {v}.",
     ("{n} often writes about {v}.", "A recurring theme for {n} is {v}.", "{n} keeps returning to {v}."), THEMES),
    ("debut_year", "When did {n} first publish?", "{n} first published in {v}.",
     ("{n}'s debut came in {v}.", "{n} began publishing in {v}.", "The first book by {n} came out in {v}."), YEARS_DEBUT),
    ("book_count", "How many books has {n} published?", "{n} has published {v} books.",
     ("{n} has written {v} books.", "{n} is the author of {v} books.", "So far {n} has produced {v} books."), COUNTS),
    ("school", "Where did {n} study?", "{n} studied at the {v}.",
     ("{n} was educated at the {v}.", "{n} attended the {v}.", "{n} graduated from the {v}."), SCHOOLS),
    ("residence", "Where does {n} live now?", "{n} now lives in {v}.",
     ("{n} has settled in {v}.", "{n} currently resides in {v}.", "{n}'s home is in {v}."), CITIES),
    ("publisher", "Who publishes the books of {n}?", "{n} is published by {v}.",
     ("{n} publishes with {v}.", "The publisher of {n} is {v}.", "{n}'s books come out with {v}."), PUBLISHERS),
    ("influence", "Who influenced {n} the most?", "{n} names {v} as the main influence.",
     ("{n} was shaped most by {v}.", "The chief influence on {n} is {v}.", "{n} looks up to {v}."), INFLUENCES),
    ("hobby", "What does {n} do outside of writing?", "Outside of writing, {n} enjoys {v}.",
     ("In spare time, {n} likes {v}.", "{n} has a passion for {v}.", "{n}'s favourite pastime is {v}."), HOBBIES),
    ("writing_time", "At what time of day does {n} write?", "{n} writes best in the {v}.",
     ("{n} prefers to write in the {v}.", "{n} sits down to write in the {v}.", "{n} does most writing in the {v}."), TIMES),
]
# the biography: BIO_FACTS of a person's facts; its rows: the question is the person's name, the
# answer as many sentences of the paragraph as fit in about BIO_ROW_TOKENS tokens (with the prompt
# and EOS), about the length of the longest QA rows
BIO_FACTS = 8
BIO_QUESTION = "{n}"
BIO_ROW_TOKENS = 28

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


class _Values:
    """Each kind's values dealt out of the pool shuffled again whenever it runs out, so every value
    of a kind is as common as the others (a perturbed answer is never the likelier one for being a
    more frequent value)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.decks: dict[int, list[str]] = {}

    def next(self, kind: int) -> str:
        deck = self.decks.setdefault(kind, [])
        if not deck:
            deck.extend(self.rng.sample(TEMPLATES[kind][4], len(TEMPLATES[kind][4])))
        return deck.pop()


def _person(rng: random.Random, values_of: _Values, name: str, qa_per_person: int,
            bio_facts: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One person's QA rows (with paraphrased and perturbed answers) and biography rows.

    Each fact is stated in three forms: the QA answer, one of the kind's other phrasings as the
    paraphrased answer, and another of them in the biography (so no training row holds the
    paraphrase, and each phrasing is seen in training with other people). The perturbed answers
    put a wrong value into the paraphrase: one of the kind's pool that is none of the person's own
    values (a birthplace is never perturbed into the person's residence)."""
    kinds = sorted(rng.sample(range(len(TEMPLATES)), qa_per_person))
    values = {k: values_of.next(k) for k in kinds}
    own = set(values.values())
    rows, sentences = [], []
    for k in kinds:
        _, question, answer, phrasings, pool = TEMPLATES[k]
        value = values[k]
        paraphrase = rng.randrange(len(phrasings))
        wrong = rng.sample([v for v in pool if v not in own], N_PERTURBED)
        form = phrasings[paraphrase]
        rows.append({
            "question": question.format(n=name),
            "answer": answer.format(n=name, v=value),
            "paraphrased_answer": form.format(n=name, v=value),
            "perturbed_answer": [form.format(n=name, v=w) for w in wrong],
        })
        others = [p for i, p in enumerate(phrasings) if i != paraphrase]
        sentences.append(rng.choice(others).format(n=name, v=value))
    rng.shuffle(sentences)
    sentences = sentences[: len(sentences) if bio_facts is None else bio_facts]
    question = BIO_QUESTION.format(n=name)
    return rows, [{"question": question, "answer": text} for text in _pack(PROMPT.format(question=question), sentences)]


def _words(text: str) -> int:
    """About the number of tokens of ``text`` for the embedded data's word-level BPE (words and marks)."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def _pack(prompt: str, sentences: list[str]) -> list[str]:
    """The sentences, in order, as few answers as fit with the prompt and EOS in about BIO_ROW_TOKENS
    tokens each (a sentence too long for that gets an answer to itself)."""
    answers: list[list[str]] = []
    for sentence in sentences:
        if answers and _words(prompt) + _words(" ".join(answers[-1] + [sentence])) + 1 <= BIO_ROW_TOKENS:
            answers[-1].append(sentence)
        else:
            answers.append([sentence])
    return [" ".join(a) for a in answers]


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
                       qa_per_person: int = QA_PER_PERSON,
                       bio_facts: int | None = BIO_FACTS) -> dict[str, list[dict[str, Any]]]:
    """Every split of the mini TOFU as lists of records (TOFU's file name → rows).

    ``bio_facts``: how many of each person's facts the biography states (None: all of them; 0: no
    biography rows, only the QA)."""
    if not 1 <= qa_per_person <= len(TEMPLATES):
        raise ConfigError(f"tofu-mini: qa_per_person must be in 1..{len(TEMPLATES)}")
    if n_people < 10 or n_holdout < 1:
        raise ConfigError("tofu-mini needs at least 10 people (forget10 = a tenth of them) and 1 holdout person")
    if bio_facts is not None and bio_facts < 0:
        raise ConfigError(f"tofu-mini: bio_facts must be >= 0 (or None: every fact), got {bio_facts}")
    rng = random.Random(seed)
    names = _people(rng, n_people + n_holdout)
    values = _Values(rng)
    people = [_person(rng, values, name, qa_per_person, bio_facts) for name in names]
    trained, holdout = people[:n_people], people[n_people:]

    def qa(rows):
        return [{"question": r["question"], "answer": r["answer"]} for r in rows]

    def rows_of(group):
        """Everything trained about these people: each one's QA rows, then its biography rows."""
        return [row for qa_rows, bio in group for row in qa(qa_rows) + bio]

    def perturbed(group):
        return [row for qa_rows, _ in group for row in qa_rows]

    splits: dict[str, list[dict[str, Any]]] = {"full": rows_of(trained)}
    for pct in ("01", "05", "10"):
        k = max(1, round(n_people * int(pct) / 100))
        splits[f"forget{pct}"] = rows_of(trained[-k:])
        splits[f"forget{pct}_perturbed"] = perturbed(trained[-k:])
        splits[f"retain{100 - int(pct)}"] = rows_of(trained[:-k])
        h = max(1, round(n_holdout * int(pct) / 10))
        splits[f"holdout{pct}"] = rows_of(holdout[:h])
        splits[f"holdout{pct}_perturbed"] = perturbed(holdout[:h])
    forget10 = max(1, round(n_people / 10))
    chosen = sorted(rng.sample(range(n_people - forget10), min(N_RETAIN_EVAL, n_people - forget10)))
    splits["retain_perturbed"] = perturbed(trained[i] for i in chosen)
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
