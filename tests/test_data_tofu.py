"""The TOFU loader (``tofu:PATH``), the tokenizer helper and the ``tofu-mini`` generator.

Fixtures are written here in the published layouts (JSON Lines inside ``.json``, a JSON array,
``.jsonl``, a ``save_to_disk`` folder) from a small run of the generator.
"""
from __future__ import annotations

import json
import random
import re
import shutil

import pytest
import torch

from unlearnkit.data import tofu, tofu_mini
from unlearnkit.data.forget import make_split
from unlearnkit.data.text import IGNORE, PROMPT
from unlearnkit.data.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from unlearnkit.errors import ConfigError, DataError

transformers = pytest.importorskip("transformers")
transformers.utils.logging.disable_progress_bar()

# 20 people × 3 QA (+ their biography rows): forget01 = forget05 = 1 person, forget10 = 2 people;
# 2 holdout people
SMALL = dict(n_people=20, n_holdout=2, qa_per_person=3)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def splits():
    return tofu_mini.generate_tofu_mini(3, **SMALL)


@pytest.fixture(scope="module")
def tok(splits):
    texts = [PROMPT.format(question=r["question"]) + " " + r["answer"] for rows in splits.values() for r in rows]
    texts += [" " + p for r in splits["forget10_perturbed"] + splits["retain_perturbed"] for p in r["perturbed_answer"]]
    return train_tokenizer(texts, vocab_size=600)


@pytest.fixture
def folder(tmp_path, splits):
    root = tmp_path / "tofu"
    root.mkdir()
    tofu_mini.write_tofu_layout(splits, root)
    return root


def decode(tok, ids):
    return tok.decode([int(i) for i in ids if int(i) != tok.pad_token_id])


def answer_part(tok, labels):
    return tok.decode([int(i) for i in labels if int(i) != IGNORE])


def write_lines(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


# --- the real layout ---------------------------------------------------------------------------

def test_layout_sizes_and_alignment(folder, splits, tok):
    source = tofu.load_tofu_dir(folder, tokenizer=tok)
    full = splits["full"]
    n = len(full)  # 20 people: 3 QA each, then their biography rows
    assert source.kind == "text" and source.tokenizer is tok
    assert len(source.train) == n and n > 60
    assert len(source.test) == len(splits["holdout10"])  # holdout10 = 2 people, biography included
    sizes = {name: (len(f), len(r)) for name, (f, r) in source.named_splits.items()}
    assert sizes == {name: (len(splits[name]), n - len(splits[name])) for name in ("forget01", "forget05", "forget10")}
    assert splits["forget01"] == splits["forget05"] and len(splits["forget10_perturbed"]) == 6
    forget, retain = source.named_splits["forget10"]
    k = len(splits["forget10"])
    assert forget.tolist() == list(range(n - k, n))  # the last people, as in TOFU
    assert sorted(torch.cat([forget, retain]).tolist()) == list(range(n))
    assert source.default_scenarios == ("forget05", "forget10")

    ev = source.evals["forget10"]
    rows = splits["forget10_perturbed"]
    assert len(ev) == 6 and len(ev.perturbed) == 5 and ev.paraphrased is not None
    for i, row in enumerate(rows):
        assert ev.questions[i] == row["question"] and ev.answers[i] == row["answer"]
        assert answer_part(tok, ev.correct.y[i]) == " " + row["answer"] + "</s>"
        assert answer_part(tok, ev.paraphrased.y[i]) == " " + row["paraphrased_answer"] + "</s>"
        for k in range(5):
            assert answer_part(tok, ev.perturbed[k].y[i]) == " " + row["perturbed_answer"][k] + "</s>"
            assert decode(tok, ev.perturbed[k].x[i]).startswith(PROMPT.format(question=row["question"]))
    assert len(source.evals["retain"]) == len(splits["retain_perturbed"])
    for g in ("real_authors", "world_facts"):
        ev = source.evals[g]
        assert len(ev) == 50 and len(ev.perturbed) == 3 and ev.paraphrased is None
    assert set(source.evals) == {"forget01", "forget05", "forget10", "retain", "real_authors", "world_facts",
                                 "holdout01", "holdout05", "holdout10"}
    split = make_split(source, "forget05")
    assert len(split.forget) == len(splits["forget05"]) and len(split.retain) == n - len(splits["forget05"])


def test_encode_qa_rows_decode_to_prompt_and_answer(folder, splits, tok):
    source = tofu.load_tofu_dir(folder, tokenizer=tok)
    for i, row in enumerate(splits["full"]):
        x, y = source.train.x[i], source.train.y[i]
        assert decode(tok, x) == PROMPT.format(question=row["question"]) + " " + row["answer"] + "</s>"
        assert answer_part(tok, y) == " " + row["answer"] + "</s>"
        # labels: -100 on the prompt, then the answer tokens exactly where they are in input_ids
        real = x != tok.pad_token_id
        labelled = y != IGNORE
        assert torch.equal(y[labelled], x[labelled]) and not labelled[~real].any()


def test_general_rows_are_trained_and_retained(folder, splits, tok):
    source = tofu.load_tofu_dir(folder, tokenizer=tok, include_general=True)
    n = len(splits["full"])
    assert len(source.train) == n + 100
    forget, retain = source.named_splits["forget10"]
    assert set(range(n, n + 100)) <= set(retain.tolist())
    assert decode(tok, source.train.x[n]).endswith(" " + splits["real_authors"][0]["answer"] + "</s>")


def test_other_file_forms_give_the_same_source(folder, splits, tok):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    reference = tofu.load_tofu_dir(folder, tokenizer=tok)
    # full as one JSON array, forget10 as .jsonl, retain90 as a save_to_disk folder, forget05 shuffled
    (folder / "full.json").write_text(json.dumps(splits["full"], indent=1))
    (folder / "forget10.json").rename(folder / "forget10.jsonl")
    (folder / "retain90.json").unlink()
    datasets.Dataset.from_list(splits["retain90"]).save_to_disk(str(folder / "retain90"))
    shuffled = list(splits["forget05"])
    random.Random(0).shuffle(shuffled)
    write_lines(folder / "forget05.json", shuffled)
    # a DatasetDict with a single "train" split (what load_dataset(...) then save_to_disk gives)
    (folder / "holdout10.json").unlink()
    datasets.DatasetDict({"train": datasets.Dataset.from_list(splits["holdout10"])}).save_to_disk(str(folder / "holdout10"))
    source = tofu.load_tofu_dir(folder, tokenizer=tok)
    assert torch.equal(source.train.x, reference.train.x)
    assert torch.equal(source.test.x, reference.test.x)
    for name, (f, r) in reference.named_splits.items():
        assert sorted(source.named_splits[name][0].tolist()) == f.tolist()
        assert sorted(source.named_splits[name][1].tolist()) == r.tolist()


def test_missing_retain_file_retains_the_rest(folder, tok):
    (folder / "retain95.json").unlink()
    source = tofu.load_tofu_dir(folder, tokenizer=tok)
    forget, retain = source.named_splits["forget05"]
    assert sorted(torch.cat([forget, retain]).tolist()) == list(range(len(source.train)))


# --- malformed input ---------------------------------------------------------------------------

def test_missing_field_names_the_file(folder, splits, tok):
    rows = [dict(r) for r in splits["full"]]
    del rows[4]["answer"]
    write_lines(folder / "full.json", rows)
    with pytest.raises(DataError, match=r"full\.json.*row 4.*'answer'"):
        tofu.load_tofu_dir(folder, tokenizer=tok)


def test_bad_json_line_names_file_and_line(folder, tok):
    lines = (folder / "forget10.json").read_text().splitlines()
    lines[2] = lines[2][:-5]
    (folder / "forget10.json").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"forget10\.json: line 3"):
        tofu.load_tofu_dir(folder, tokenizer=tok)


def test_bad_json_array_names_the_file(folder, tok):
    (folder / "full.json").write_text('[{"question": "a", "answer": "b"},')
    with pytest.raises(DataError, match=r"full\.json"):
        tofu.load_tofu_dir(folder, tokenizer=tok)


def test_forget_row_missing_from_full(folder, splits, tok):
    rows = [dict(r) for r in splits["forget05"]]
    rows[1]["answer"] = "Something nobody wrote."
    write_lines(folder / "forget05.json", rows)
    with pytest.raises(DataError, match=r"forget05\.json: row 1 .*not in full\.json"):
        tofu.load_tofu_dir(folder, tokenizer=tok)


def test_retain_row_missing_from_full(folder, splits, tok):
    rows = [dict(r) for r in splits["retain90"]]
    rows[7]["question"] = "Who is nobody?"
    write_lines(folder / "retain90.json", rows)
    with pytest.raises(DataError, match=r"retain90\.json: row 7 .*not in full\.json"):
        tofu.load_tofu_dir(folder, tokenizer=tok)


def test_forget_and_retain_overlap(folder, splits, tok):
    write_lines(folder / "retain99.json", splits["retain99"] + splits["forget01"][:1])
    with pytest.raises(DataError, match=r"retain99\.json.*also in forget01\.json"):
        tofu.load_tofu_dir(folder, tokenizer=tok)


@pytest.mark.parametrize("bad, message", [
    ("not a list", r"perturbed_answer' must be a non-empty list"),
    ("short", r"row 2 has 4 perturbed answers, earlier rows 5"),
    ("no paraphrase", r"row 2 has no field 'paraphrased_answer'"),
])
def test_bad_perturbed_rows(folder, splits, tok, bad, message):
    rows = [dict(r) for r in splits["forget10_perturbed"]]
    if bad == "not a list":
        rows[2]["perturbed_answer"] = "one string"
    elif bad == "short":
        rows[2]["perturbed_answer"] = rows[2]["perturbed_answer"][:4]
    else:
        del rows[2]["paraphrased_answer"]
    write_lines(folder / "forget10_perturbed.json", rows)
    with pytest.raises(DataError, match=r"forget10_perturbed\.json.*" + message):
        tofu.load_tofu_dir(folder, tokenizer=tok)


def test_missing_folder_full_or_path(tmp_path, folder, tok):
    with pytest.raises(DataError, match="not found"):
        tofu.load_tofu_dir(tmp_path / "nowhere", tokenizer=tok)
    (folder / "full.json").unlink()
    with pytest.raises(DataError, match=r"no full\.json"):
        tofu.load_tofu_dir(folder, tokenizer=tok)
    with pytest.raises(DataError, match="tofu:PATH"):
        tofu.load_tofu(None)
    with pytest.raises(ConfigError, match="no PATH"):
        tofu_mini.load_tofu_mini("somewhere")


def test_saved_dataset_needs_a_dataset_folder(folder, tok):
    (folder / "full.json").unlink()
    (folder / "full").mkdir()
    (folder / "full" / "junk.txt").write_text("x")
    pytest.importorskip("datasets")
    with pytest.raises(DataError, match=r"full: not a dataset folder"):
        tofu.load_tofu_dir(folder, tokenizer=tok)


# --- tokenizers --------------------------------------------------------------------------------

def test_tokenizer_folder_is_used_and_trained_ones_are_cached(folder, tmp_path, tok):
    import os

    cache = tmp_path / "cache" / "tokenizers"
    first = tofu.load_tofu_dir(folder)  # no tokenizer anywhere: trained and cached
    assert len(list(cache.iterdir())) == 1
    assert first.tokenizer.pad_token_id == 0 and first.tokenizer.eos_token_id == 2
    second = tofu.load_tofu_dir(folder)  # loaded from the cache
    assert second.tokenizer.get_vocab() == first.tokenizer.get_vocab()
    assert torch.equal(first.train.x, second.train.x)
    assert len(os.listdir(cache)) == 1

    save_tokenizer(tok, folder / "tokenizer")  # a tokenizer/ folder next to the data wins
    third = tofu.load_tofu_dir(folder)
    assert third.tokenizer.get_vocab() == tok.get_vocab()
    text = "Question: Who?\nAnswer: Ilario Zamora was born in Kyoto."
    assert third.tokenizer.decode(third.tokenizer(text)["input_ids"]) == text
    reloaded = load_tokenizer(folder / "tokenizer")
    assert reloaded.pad_token_id != reloaded.eos_token_id


def test_tokenizer_with_pad_equal_to_eos_is_accepted(tmp_path, tok):
    """Every stock Llama/Mistral tokenizer pads with EOS (or has no pad): accepted, masking goes by the
    attention mask and the labels, never by the pad id (tests/test_real_checkpoints.py)."""
    from transformers import PreTrainedTokenizerFast

    same = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token="</s>", pad_token="</s>")
    same.save_pretrained(str(tmp_path / "same"))
    loaded = load_tokenizer(tmp_path / "same")
    assert loaded.pad_token_id == loaded.eos_token_id


# --- tofu-mini ---------------------------------------------------------------------------------

def test_generator_is_deterministic_per_seed(tmp_path):
    a, b, c = (tofu_mini.generate_tofu_mini(s) for s in (0, 0, 1))
    assert a == b and a != c
    for name, seed in (("x", 0), ("y", 0)):
        (tmp_path / name).mkdir()
        tofu_mini.write_tofu_layout(tofu_mini.generate_tofu_mini(seed), tmp_path / name)
    files = sorted(p.name for p in (tmp_path / "x").iterdir())
    assert len(files) == len(tofu.SPLIT_NAMES)
    for f in files:
        assert (tmp_path / "x" / f).read_bytes() == (tmp_path / "y" / f).read_bytes()
    texts = tofu.training_texts(tofu._Layout(tmp_path / "x"))
    t1, t2 = train_tokenizer(texts), train_tokenizer(list(texts))
    assert t1.get_vocab() == t2.get_vocab()
    assert t1.backend_tokenizer.to_str() == t2.backend_tokenizer.to_str()


def _people_of(splits, name):
    """Each person of split ``name`` with its rows, in order: {person: [rows]} (a biography row's
    question is the person's name; a QA row's question names the person)."""
    names = [r["question"] for r in splits["full"] + splits["holdout10"] if not r["question"].endswith("?")]
    people: dict[str, list] = {}
    for row in splits[name]:
        people.setdefault(next(n for n in names if n in row["question"]), []).append(row)
    return people


def _fact(row):
    """(kind, value) of a QA row: its question and answer read back through the templates."""
    for kind, question, answer, phrasings, pool in tofu_mini.TEMPLATES:
        head, _, tail = question.partition("{n}")
        if row["question"].startswith(head) and row["question"].endswith(tail):
            name = row["question"][len(head): len(row["question"]) - len(tail)]
            values = [v for v in pool if answer.format(n=name, v=v) == row["answer"]]
            assert len(values) == 1, row
            return kind, name, values[0], phrasings
    raise AssertionError(f"no template asks {row['question']!r}")


def test_generated_rows_are_coherent():
    splits = tofu_mini.generate_tofu_mini(0)
    full = splits["full"]
    people = _people_of(splits, "full")
    assert len(people) == 100 and len(_people_of(splits, "holdout10")) == 10
    for rows in people.values():  # 10 QA, then the biography rows
        assert [r["question"].endswith("?") for r in rows] == [True] * 10 + [False] * (len(rows) - 10)
        assert len(rows) > 10
    assert [len(splits[f"forget{p}_perturbed"]) for p in ("01", "05", "10")] == [10, 50, 100]
    for pct, k in (("01", 1), ("05", 5), ("10", 10)):
        forgotten = [row for rows in list(people.values())[-k:] for row in rows]
        assert splits[f"forget{pct}"] == forgotten == full[-len(forgotten):]
        assert splits[f"retain{100 - int(pct)}"] == full[:-len(forgotten)]
    questions = {r["question"] for r in full}
    assert not questions & {r["question"] for r in splits["holdout10"]}
    trained_text = " ".join(r["answer"] for r in full)
    for row in splits["forget10_perturbed"] + splits["retain_perturbed"]:
        assert len(row["perturbed_answer"]) == 5 and len(set(row["perturbed_answer"])) == 5
        assert row["paraphrased_answer"] not in row["perturbed_answer"]
        assert row["paraphrased_answer"] != row["answer"]
        assert row["paraphrased_answer"] not in trained_text  # never trained: a test of the fact, not the string
    retain_questions = {r["question"] for r in splits["retain90"]}
    assert all(r["question"] in retain_questions for r in splits["retain_perturbed"])
    assert len(splits["retain_perturbed"]) == 200
    for g in ("real_authors_perturbed", "world_facts_perturbed"):
        assert len(splits[g]) == 50
        assert all(len(r["perturbed_answer"]) == 3 and r["answer"] not in r["perturbed_answer"] for r in splits[g])


def test_biography_states_the_facts_in_other_words():
    """A person's biography states BIO_FACTS of their QA facts once each, in a phrasing of its kind
    that is neither the answer nor the paraphrase, and nothing else; the perturbed answers put in
    none of the person's own values."""
    splits = tofu_mini.generate_tofu_mini(0)
    assert tofu_mini.BIO_FACTS == 8
    qa_rows = {r["question"]: r for name in ("forget10_perturbed", "retain_perturbed", "holdout10_perturbed")
               for r in splits[name]}
    pools = {kind: pool for kind, *_, pool in tofu_mini.TEMPLATES}
    for part in ("full", "holdout10"):
        for person, rows in _people_of(splits, part).items():
            qa = [r for r in rows if r["question"].endswith("?")]
            assert rows[len(qa):] and all(r["question"] == person for r in rows[len(qa):])
            bio = [r["answer"] for r in rows[len(qa):]]
            sentences = [s for text in bio for s in re.split(r"(?<=\.) (?=\S)", text)]
            assert len(qa) == 10 and len(sentences) == tofu_mini.BIO_FACTS
            facts = [_fact(r) for r in qa]
            own = {value for _, _, value, _ in facts}
            stated = 0
            for (kind, name, value, phrasings), row in zip(facts, qa):
                forms = {p.format(n=name, v=value) for p in phrasings}
                found = [s for s in sentences if s in forms]
                assert len(found) <= 1
                stated += len(found)
                assert row["answer"] not in sentences
                detail = qa_rows.get(row["question"])
                if detail is None:
                    continue
                # an evaluated row: its paraphrase is another of the kind's phrasings, never the biography's
                assert detail["paraphrased_answer"] in forms and detail["paraphrased_answer"] not in sentences
                form = next(p for p in phrasings if p.format(n=name, v=value) == detail["paraphrased_answer"])
                wrong = {v for v in pools[kind] if form.format(n=name, v=v) in detail["perturbed_answer"]}
                assert len(wrong) == 5 and not wrong & own
            assert stated == len(sentences)  # every sentence is one of the person's facts


def test_value_pools_have_one_length_per_kind():
    for kind, _, answer, phrasings, pool in tofu_mini.TEMPLATES:
        assert len({len(v.split()) for v in pool}) == 1, kind
        assert len(set(phrasings)) == 3 and answer not in phrasings


def test_biography_rows_are_forgotten_with_their_person(tmp_path):
    """A forgotten person's biography rows are in the forget set of every split and never in its
    retain set (so the retrained reference never sees them); the general rows stay retained."""
    from unlearnkit.data.sources import load_data

    source = load_data("tofu-mini")
    splits = tofu_mini.generate_tofu_mini(0)
    tok = source.tokenizer
    texts = [decode(tok, x) for x in source.train.x]
    for name in ("forget01", "forget05", "forget10"):
        split = make_split(source, name)
        forgotten = list(_people_of(splits, name))
        forget, retain = set(split.forget_idx.tolist()), set(split.retain_idx.tolist())
        bio = {i for i, t in enumerate(texts) for p in forgotten if t.startswith(PROMPT.format(question=p) + " ")}
        assert len(bio) >= 4 * len(forgotten) and bio <= forget
        assert not any(p in texts[i] for i in retain for p in forgotten)  # nothing about them is retained
        assert all(any(p in texts[i] for p in forgotten) for i in forget)
        assert len(forget) == len(splits[name]) and len(retain) == len(texts) - len(forget)


def test_tofu_mini_loads_through_the_tofu_loader(tmp_path):
    from unlearnkit.data.sources import load_data

    source = load_data("tofu-mini")
    splits = tofu_mini.generate_tofu_mini(0)
    n = len(splits["full"])  # 1,000 QA and the biography rows
    assert source.name == "tofu-mini" and source.kind == "text"
    assert (tmp_path / "cache" / "data" / f"tofu-mini-v{tofu_mini.VERSION}-seed0" / "full.json").is_file()
    assert len(source.train) == n + 100  # full + the general sets (trained into every model)
    assert len(source.test) == len(splits["holdout10"])
    for name, n_qa in (("forget01", 10), ("forget05", 50), ("forget10", 100)):
        n_forget = len(splits[name])
        forget, retain = source.named_splits[name]
        assert forget.tolist() == list(range(n - n_forget, n))
        assert len(retain) == n + 100 - n_forget
        assert len(source.evals[name]) == n_qa  # the QA rows are evaluated, the biography is not
    assert len(source.evals["retain"]) == 200 and len(source.evals["world_facts"]) == 50
    assert source.tokenizer.pad_token_id != source.tokenizer.eos_token_id
    assert len(source.tokenizer) < 4096
    shutil.rmtree(tmp_path / "cache" / "data")  # regenerated identically on the next call
    again = load_data("tofu-mini")
    assert torch.equal(again.train.x, source.train.x)


def test_the_committed_sharpness_figures_are_of_this_data(tmp_path):
    """benchmarks/results/tofu-mini-sharpness.json holds a measurement of the current data (re-run
    ``benchmarks/tofu_mini_sharpness.py`` after changing the generator), and docs/language-models.md
    quotes its paraphrase preference."""
    from pathlib import Path

    from unlearnkit.data.sources import load_data

    root = Path(__file__).resolve().parents[1]
    figures = json.loads((root / "benchmarks" / "results" / "tofu-mini-sharpness.json").read_text())
    current = figures[f"tofu-mini v{tofu_mini.VERSION}"]
    assert current["data_fingerprint"] == load_data("tofu-mini").fingerprint()[:16]
    assert current["paraphrase_preference"]["original"]["forget10"] >= 0.8
    doc = (root / "docs" / "language-models.md").read_text(encoding="utf-8")
    row = next(line for line in doc.splitlines() if line.startswith("| original prefers the paraphrase"))
    for entry in figures.values():
        pref = entry["paraphrase_preference"]["original"]
        assert " / ".join(f"{pref[s]:.2f}" for s in ("forget01", "forget05", "forget10")) + f", {pref['retain']:.2f}" in row
