"""MMLU from local files (``mmlu:PATH``): the original CSV layout and the hub's parquet layouts read the
same rows, the lm-eval prompt (zero- and few-shot) by hand, the ``mmlu`` audit against an independent
argmax, and MMLU attached to a WMDP folder as its utility (``mmlu=PATH`` → ``mmlu_acc``)."""
from __future__ import annotations

import csv
import json
import logging

import pytest
import torch

from unlearnkit.audits import AuditContext, audit
from unlearnkit.data import mmlu
from unlearnkit.data.sources import load_data
from unlearnkit.data.split import Split
from unlearnkit.data.text import IGNORE
from unlearnkit.errors import ConfigError, DataError

transformers = pytest.importorskip("transformers")
transformers.utils.logging.disable_progress_bar()

LETTERS = "ABCD"


def question(subject, i, answer):
    return {"question": f"  In {subject.replace('_', ' ')}, which value is number {i}? ",
            "choices": [f"value {k} of {i}" for k in range(4)], "answer": answer, "subject": subject}


SUBJECTS = ("college_biology", "abstract_algebra")
TEST = {s: [question(s, i, (i + j) % 4) for i in range(3)] for j, s in enumerate(SUBJECTS)}
DEV = {s: [question(s, 100 + i, (i + 2) % 4) for i in range(5)] for s in SUBJECTS}


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for r in rows:
            writer.writerow([r["question"], *r["choices"], LETTERS[r["answer"]]])


@pytest.fixture
def csv_folder(tmp_path):
    root = tmp_path / "mmlu-csv"
    for s in SUBJECTS:
        write_csv(root / "data" / "test" / f"{s}_test.csv", TEST[s])
        write_csv(root / "data" / "dev" / f"{s}_dev.csv", DEV[s])
    return root


def write_parquet(path, rows, with_subject=True):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {"question": [r["question"] for r in rows], "choices": [r["choices"] for r in rows],
               "answer": pa.array([r["answer"] for r in rows], type=pa.int64())}
    if with_subject:
        columns["subject"] = [r["subject"] for r in rows]
    pq.write_table(pa.table(columns), path)


@pytest.fixture
def parquet_all(tmp_path):
    root = tmp_path / "mmlu-all"
    # the hub's `all` config: subjects interleaved in one file, ordered by subject by the reader
    write_parquet(root / "all" / "test-00000-of-00001.parquet", TEST[SUBJECTS[1]] + TEST[SUBJECTS[0]])
    write_parquet(root / "all" / "dev-00000-of-00001.parquet", DEV[SUBJECTS[0]] + DEV[SUBJECTS[1]])
    return root


@pytest.fixture
def parquet_subjects(tmp_path):
    root = tmp_path / "mmlu-subjects"
    for s in SUBJECTS:
        write_parquet(root / s / "test-00000-of-00001.parquet", TEST[s], with_subject=False)
        write_parquet(root / s / "dev-00000-of-00001.parquet", DEV[s], with_subject=False)
    return root


@pytest.fixture(scope="module")
def tok():
    from unlearnkit.data.tokenizer import train_tokenizer

    texts = [mmlu.mmlu_context(r, DEV[r["subject"]][:2]) for s in SUBJECTS for r in TEST[s]]
    return train_tokenizer(texts + [" A", " B", " C", " D"], vocab_size=400)


def expected_rows(split="test"):
    rows = TEST if split == "test" else DEV
    return [r for s in sorted(SUBJECTS) for r in rows[s]]


# --- reading ------------------------------------------------------------------------------------

def test_csv_layout_reads_rows_by_subject(csv_folder):
    rows = mmlu.read_mmlu(csv_folder)
    assert rows == expected_rows()                                 # abstract_algebra before college_biology
    assert mmlu.read_mmlu(csv_folder, "dev") == expected_rows("dev")
    assert [r["subject"] for r in mmlu.read_mmlu(csv_folder, subjects=["college_biology"])] == ["college_biology"] * 3
    # the test/ and dev/ folders directly in PATH work too
    assert mmlu.read_mmlu(csv_folder / "data") == rows


@pytest.mark.parametrize("layout", ["parquet_all", "parquet_subjects"])
def test_parquet_layouts_read_the_same_rows(layout, request, csv_folder):
    root = request.getfixturevalue(layout)
    assert mmlu.read_mmlu(root) == mmlu.read_mmlu(csv_folder)
    assert mmlu.read_mmlu(root, "dev") == mmlu.read_mmlu(csv_folder, "dev")


def test_errors_name_the_file(tmp_path, csv_folder):
    with pytest.raises(DataError, match="no MMLU questions found"):
        mmlu.read_mmlu(tmp_path)
    bad = csv_folder / "data" / "test" / "college_biology_test.csv"
    bad.write_text("q,a,b,c,D\n")
    with pytest.raises(DataError, match=r"college_biology_test\.csv: record 1 has 5 fields"):
        mmlu.read_mmlu(csv_folder)
    bad.write_text("q,a,b,c,d,E\n")
    with pytest.raises(DataError, match="answer 'E'"):
        mmlu.read_mmlu(csv_folder)
    write_csv(bad, TEST["college_biology"])
    with pytest.raises(DataError, match="astronomy"):
        mmlu.read_mmlu(csv_folder, subjects=["astronomy"])
    with pytest.raises(ConfigError):
        mmlu.read_mmlu(csv_folder, "train")


# --- prompts --------------------------------------------------------------------------------------

def test_zero_and_few_shot_prompts_by_hand():
    row, shots = TEST["college_biology"][1], DEV["college_biology"][:2]
    zero = ("The following are multiple choice questions (with answers) about college biology.\n\n"
            "In college biology, which value is number 1?\n"
            "A. value 0 of 1\nB. value 1 of 1\nC. value 2 of 1\nD. value 3 of 1\nAnswer:")
    assert mmlu.mmlu_context(row) == zero
    shot = lambda r: (f"In college biology, which value is number {r['question'].split()[-1][:-1]}?\n"  # noqa: E731
                      + "".join(f"{L}. {c}\n" for L, c in zip(LETTERS, r["choices"]))
                      + f"Answer: {LETTERS[r['answer']]}\n\n")
    two = ("The following are multiple choice questions (with answers) about college biology.\n\n"
           + shot(shots[0]) + shot(shots[1]) + zero.split("\n\n", 1)[1])
    assert mmlu.mmlu_context(row, shots) == two


def test_encoding_labels_only_the_letter(tok):
    rows = expected_rows()
    choices = mmlu.encode_mmlu(tok, rows, max_length=512)
    assert len(choices) == 6 and choices.answer.tolist() == [r["answer"] for r in rows]
    for k, option in enumerate(choices.options):
        ids, labels = option.x[0], option.y[0]
        real = ids != tok.pad_token_id
        assert tok.decode(ids[real].tolist()) == mmlu.mmlu_context(rows[0]) + f" {LETTERS[k]}"
        assert tok.decode(labels[labels != IGNORE].tolist()) == f" {LETTERS[k]}"


def test_few_shot_needs_enough_dev_rows(tok, csv_folder):
    choices = mmlu.load_mmlu_choices(csv_folder, tok, few_shot=5, max_length=2048)
    row = choices.options[0].x[0]
    assert tok.decode(row[row != tok.pad_token_id].tolist()).count("Answer:") == 6
    with pytest.raises(DataError, match="6-shot"):
        mmlu.load_mmlu_choices(csv_folder, tok, few_shot=6)


def test_long_questions_lose_their_start_with_a_warning(tok, caplog):
    rows = expected_rows()
    with caplog.at_level(logging.WARNING):
        choices = mmlu.encode_mmlu(tok, rows, max_length=8)
    assert "6 of 6 rows are longer than max_length=8" in caplog.text
    for k, option in enumerate(choices.options):
        assert option.x.shape[1] == 8
        labels = option.y[0]
        assert tok.decode(labels[labels != IGNORE].tolist()) == f" {LETTERS[k]}"   # the continuation survives


# --- scoring ----------------------------------------------------------------------------------------

def _independent_choice_ll(model, option, pad_id):
    """Σ of the labelled tokens' log-probabilities of each row, straight from the logits."""
    ids, labels = option.x, option.y
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=(ids != pad_id).long()).logits
    log_p = torch.log_softmax(logits.float(), -1)
    out = []
    for b in range(len(ids)):
        out.append(sum(float(log_p[b, t - 1, labels[b, t]]) for t in range(1, ids.shape[1]) if labels[b, t] != IGNORE))
    return torch.tensor(out)


def test_mmlu_source_and_audit(csv_folder, tok):
    from lm_helpers import tiny_llama
    from unlearnkit.tasks.causal_lm import CausalLMTask

    source = load_data(f"mmlu:{csv_folder}", tokenizer=tok, max_length=512)
    assert source.kind == "text" and source.default_audits == ("mmlu",)
    assert len(source.test) == 6 and len(source.train) == 10             # test rows / dev rows as text
    choices = source.evals["mmlu"]
    model = tiny_llama(tok, seed=1)
    ll = torch.stack([_independent_choice_ll(model, o, tok.pad_token_id) for o in choices.options], dim=1)
    expected = 100.0 * float((ll.argmax(1) == choices.answer).double().mean())
    split = Split(source, torch.arange(5), torch.arange(5, 10), spec="custom")
    task = CausalLMTask(tok)
    assert audit(model, task, split, ["mmlu"], ctx=AuditContext(batch_size=4)) == {"mmlu_acc": pytest.approx(expected)}
    planted = mmlu.ChoiceSet("mmlu", choices.questions, choices.choices, ll.argmax(1), choices.options)
    source.evals["mmlu"] = planted
    assert audit(model, task, split, ["mmlu"], ctx=AuditContext()) == {"mmlu_acc": 100.0}
    source.evals.clear()
    with pytest.raises(ConfigError, match="mmlu"):
        audit(model, task, split, ["mmlu"], ctx=AuditContext())


def test_wmdp_takes_mmlu_as_its_utility(tmp_path, csv_folder):
    from lm_helpers import tiny_llama
    from unlearnkit.data.forget import make_split
    from unlearnkit.tasks.causal_lm import CausalLMTask

    root = tmp_path / "wmdp"
    (root / "wmdp-mcqs").mkdir(parents=True)
    (root / "wmdp-corpora").mkdir()
    mcqs = [{"question": f"Which agent {i}?", "choices": [f"c{k}" for k in range(4)], "answer": i % 4} for i in range(4)]
    (root / "wmdp-mcqs" / "bio_questions.json").write_text(json.dumps(mcqs))
    for part in ("forget", "retain"):
        lines = [json.dumps({"text": f"{part} document {i}."}) for i in range(4)]
        (root / "wmdp-corpora" / f"bio-{part}-corpus.jsonl").write_text("\n".join(lines) + "\n")
    source = load_data(f"wmdp:{root}", mmlu=str(csv_folder), mmlu_few_shot=1)
    assert set(source.evals) == {"hazard", "mmlu"} and len(source.evals["mmlu"]) == 6
    split = make_split(source, "bio")
    model = tiny_llama(source.tokenizer, seed=0)
    m = audit(model, CausalLMTask(source.tokenizer), split, ["wmdp"], ctx=AuditContext())
    assert set(m) == {"hazard_acc", "mmlu_acc"} and 0.0 <= m["mmlu_acc"] <= 100.0
    from unlearnkit.data.sources import typed_data_options

    assert typed_data_options("wmdp:x", {"mmlu": "/p", "mmlu_few_shot": "5"}) == {"mmlu": "/p", "mmlu_few_shot": 5}
