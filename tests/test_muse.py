"""MUSE from local folders (``muse:PATH``): the MUSE repository's JSON/TXT layout and the hub's parquet
layout, splits and counts, errors naming the missing file; the ``muse`` audit end to end on a tiny
Llama, ROUGE-L F1 with planted generations, and PrivLeak's formula by hand."""
from __future__ import annotations

import json
import logging
import math

import pytest
import torch

from unlearnkit.audits import AuditContext, audit
from unlearnkit.audits import muse as muse_audit
from unlearnkit.audits.tofu import privleak
from unlearnkit.data.forget import make_split
from unlearnkit.data.sources import load_data
from unlearnkit.data.text import IGNORE
from unlearnkit.errors import ConfigError, DataError

transformers = pytest.importorskip("transformers")
transformers.utils.logging.disable_progress_bar()

TOWNS = ["Arden", "Brisk", "Calder", "Dunmore", "Eske", "Fallow", "Garth", "Hollin"]


def doc(kind, i):
    return f"The {kind} report {i} says the town of {TOWNS[i % 8]} held its fair in spring number {i}."


RAW = {"forget": [doc("forget", i) for i in range(6)], "retain1": [doc("retain", i) for i in range(5)],
       "retain2": [doc("other", i) for i in range(4)], "holdout": [doc("holdout", i) for i in range(5)]}
PRIVLEAK = {"forget": RAW["forget"][:4], "retain": RAW["retain1"][:4], "holdout": RAW["holdout"][:4]}
KNOWMEM = {
    "forget_qa": [{"question": f"Where was forget fair {i}?", "answer": TOWNS[i % 8]} for i in range(3)],
    "retain_qa": [{"question": f"Where was retain fair {i}?", "answer": TOWNS[(i + 3) % 8]} for i in range(4)],
    "forget_qa_icl": [{"question": "Where was fair 99?", "answer": "Arden"}],
    "retain_qa_icl": [{"question": "Where was fair 98?", "answer": "Brisk"}, {"question": "Where was fair 97?",
                                                                               "answer": "Garth"}],
}
VERBMEM = [{"prompt": f"The forget report {i} says", "gt": f"the town of {TOWNS[i % 8]} held its fair."} for i in range(3)]


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def repo_folder(tmp_path):
    """The layout the MUSE repository's load_data.py writes (data/news/…)."""
    root = tmp_path / "news"
    for split, docs in RAW.items():
        write_json(root / "raw" / f"{split}.json", docs)
    for split, docs in PRIVLEAK.items():
        write_json(root / "privleak" / f"{split}.json", docs)
    for split, rows in KNOWMEM.items():
        write_json(root / "knowmem" / f"{split}.json", rows)
    write_json(root / "verbmem" / "forget.json", VERBMEM)
    return root


@pytest.fixture
def hub_folder(tmp_path):
    """The hub dataset's parquet files (muse-bench/MUSE-News: <config>/<split>-00000-of-00001.parquet)."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    root = tmp_path / "MUSE-News"

    def put(config, split, rows):
        (root / config).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), root / config / f"{split}-00000-of-00001.parquet")

    for split, docs in RAW.items():
        put("raw", split, [{"text": t} for t in docs])
    for split, docs in PRIVLEAK.items():
        put("privleak", split, [{"text": t} for t in docs])
    for split, rows in KNOWMEM.items():
        put("knowmem", split, rows)
    put("verbmem", "forget", VERBMEM)
    return root


@pytest.fixture(scope="module")
def tok():
    from unlearnkit.data.tokenizer import train_tokenizer

    texts = [t for docs in RAW.values() for t in docs] + [f"Question: {r['question']}\nAnswer: {r['answer']}"
                                                          for rows in KNOWMEM.values() for r in rows]
    return train_tokenizer(texts + [r["prompt"] + " " + r["gt"] for r in VERBMEM], vocab_size=300)


def chunk_count(tok, docs, max_length):
    n = len(tok("\n\n".join(docs), add_special_tokens=False)["input_ids"])
    return math.ceil(n / max_length)


# --- the loader ---------------------------------------------------------------------------------

def test_repo_layout_splits_and_counts(repo_folder, tok):
    source = load_data(f"muse:{repo_folder}", tokenizer=tok, max_length=16)
    n_forget, n_r1, n_r2 = (chunk_count(tok, RAW[s], 16) for s in ("forget", "retain1", "retain2"))
    assert len(source.train) == n_forget + n_r1 + n_r2 and source.train.x.shape[1] == 16
    forget, retain = source.named_splits["forget"]
    assert forget.tolist() == list(range(n_forget))
    assert retain.tolist() == list(range(n_forget, n_forget + n_r1 + n_r2))         # retain1 and retain2
    # the chunks are the forget documents joined by blank lines, every token labelled
    ids = source.train.x[:n_forget].flatten()
    assert tok.decode(ids[ids != tok.pad_token_id].tolist()) == "\n\n".join(RAW["forget"])
    assert torch.equal(source.train.y[:n_forget] != IGNORE, source.train.x[:n_forget] != tok.pad_token_id)
    assert set(source.evals) == {"holdout", "privleak_forget", "verbmem_forget", "knowmem_forget", "knowmem_retain"}
    assert len(source.test) == len(PRIVLEAK["holdout"]) and len(source.evals["privleak_forget"]) == 4
    assert len(source.evals["knowmem_forget"]) == 3 and len(source.evals["knowmem_retain"]) == 4
    assert source.evals["verbmem_forget"].questions == [r["prompt"] for r in VERBMEM]
    assert source.default_scenarios == ("forget",) and source.default_audits == ("muse",)
    only_r1 = load_data(f"muse:{repo_folder}", tokenizer=tok, max_length=16, retain="retain1")
    assert len(only_r1.named_splits["forget"][1]) == n_r1


def test_knowmem_and_verbmem_rows(repo_folder, tok):
    source = load_data(f"muse:{repo_folder}", tokenizer=tok, max_length=256)
    retain = source.evals["knowmem_retain"].correct
    ids, labels = retain.x[0], retain.y[0]
    prompt = ids[(labels == IGNORE) & (ids != tok.pad_token_id)]
    icl = "Question: Where was fair 98?\nAnswer: Brisk\n\nQuestion: Where was fair 97?\nAnswer: Garth\n\n"
    assert tok.decode(prompt.tolist()) == icl + "Question: Where was retain fair 0?\nAnswer:"
    assert tok.decode(labels[labels != IGNORE].tolist()) == " " + TOWNS[3] + tok.eos_token
    verb = source.evals["verbmem_forget"].correct
    ids, labels = verb.x[1], verb.y[1]
    assert tok.decode(ids[(labels == IGNORE) & (ids != tok.pad_token_id)].tolist()) == VERBMEM[1]["prompt"]
    assert tok.decode(labels[labels != IGNORE].tolist()) == " " + VERBMEM[1]["gt"]              # no EOS


def test_hub_parquet_layout_reads_the_same(repo_folder, hub_folder, tok):
    a = load_data(f"muse:{repo_folder}", tokenizer=tok, max_length=16)
    b = load_data(f"muse:{hub_folder}", tokenizer=tok, max_length=16)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert a.evals["knowmem_forget"].answers == b.evals["knowmem_forget"].answers
    assert torch.equal(a.evals["verbmem_forget"].correct.x, b.evals["verbmem_forget"].correct.x)


def test_text_files_in_the_folder_are_enough(tmp_path, tok):
    root = tmp_path / "books"
    root.mkdir()
    for split in ("forget", "retain1", "holdout"):
        (root / f"{split}.txt").write_text("\n\n".join(RAW[split]))
    source = load_data(f"muse:{root}", tokenizer=tok, max_length=16)
    assert set(source.evals) == {"holdout"}
    assert len(source.test) == chunk_count(tok, RAW["holdout"], 16)             # the raw holdout, chunked
    with pytest.raises(ConfigError, match="retain1 and/or retain2"):
        load_data(f"muse:{root}", tokenizer=tok, retain="retain3")


def test_missing_files_are_named(repo_folder, tok):
    (repo_folder / "raw" / "forget.json").unlink()
    with pytest.raises(DataError, match=r"no forget corpus \(looked for raw/forget\.json, raw/forget\.jsonl"):
        load_data(f"muse:{repo_folder}", tokenizer=tok)
    write_json(repo_folder / "raw" / "forget.json", RAW["forget"])
    for split in ("retain1", "retain2"):
        (repo_folder / "raw" / f"{split}.json").unlink()
    with pytest.raises(DataError, match="no retain corpus"):
        load_data(f"muse:{repo_folder}", tokenizer=tok)
    write_json(repo_folder / "raw" / "retain1.json", RAW["retain1"])
    (repo_folder / "raw" / "holdout.json").unlink()
    (repo_folder / "privleak" / "holdout.json").unlink()
    with pytest.raises(DataError, match=r"no holdout documents .*privleak/holdout\.json"):
        load_data(f"muse:{repo_folder}", tokenizer=tok)
    with pytest.raises(DataError, match="not found"):
        load_data(f"muse:{repo_folder / 'nope'}", tokenizer=tok)
    with pytest.raises(DataError, match="muse needs a folder"):
        load_data("muse")
    write_json(repo_folder / "raw" / "holdout.json", [{"body": "no text field"}])
    with pytest.raises(DataError, match=r"holdout\.json: record 0 is not a text"):
        load_data(f"muse:{repo_folder}", tokenizer=tok)


# --- the audit ----------------------------------------------------------------------------------

def test_privleak_formula_by_hand():
    # MUSE: (AUC_unlearn − AUC_retrain) / AUC_retrain × 100 with MUSE's AUC = 1 − ours (members high)
    for ours, ours_retrain in ((0.9, 0.6), (0.5, 0.5), (1.0, 0.5), (0.2, 0.45)):
        muse_auc, muse_retrain = 1 - ours, 1 - ours_retrain
        assert privleak(ours, ours_retrain) == pytest.approx((muse_auc - muse_retrain) / muse_retrain * 100)
    assert privleak(0.9, 0.6) == pytest.approx(-75.0)


def test_stopwords_cut_like_muse():
    assert muse_audit.cut_at_stopwords(" Arden\n\nQuestion: next") == "Arden"
    assert muse_audit.cut_at_stopwords("Brisk\nQuestion: x") == "Brisk"
    assert muse_audit.cut_at_stopwords("Garth Question: x") == "Garth"
    assert muse_audit.rouge_l_f1(["the town of Arden"], ["town of Arden held"])[0] == pytest.approx(
        2 * (3 / 4) * (3 / 4) / (3 / 4 + 3 / 4))


@pytest.fixture
def setup(repo_folder, tok):
    from lm_helpers import tiny_llama
    from unlearnkit.tasks.causal_lm import CausalLMTask

    source = load_data(f"muse:{repo_folder}", tokenizer=tok, max_length=64)
    return source, make_split(source, "forget"), CausalLMTask(tok), tiny_llama(tok, seed=1)


def test_audit_end_to_end_and_privleak_unavailable_without_retrain(setup, caplog):
    source, split, task, model = setup
    options = {"muse": muse_audit.MuseConfig(verbmem_max_new_tokens=8, knowmem_max_new_tokens=6)}
    with caplog.at_level(logging.WARNING):
        m = audit(model, task, split, ["muse"], ctx=AuditContext(batch_size=8, options=options))
    assert set(m) == {"verbmem_f", "verbmem_em", "verbmem_es", "knowmem_f", "knowmem_r", "mia_auc_mink",
                      "mia_auc_minkpp"}
    assert "privleak is unavailable" in caplog.text
    assert all(0.0 <= m[k] <= 100.0 for k in ("verbmem_f", "knowmem_f", "knowmem_r"))
    # with the retrained model: itself gives PrivLeak 0; another model the formula on the two AUCs
    ctx = AuditContext(batch_size=8, retrain=model, options=options)
    same = audit(model, task, split, ["muse"], ctx=ctx)
    assert same["privleak"] == pytest.approx(0.0, abs=1e-6) and same["privleak_minkpp"] == pytest.approx(0.0, abs=1e-6)
    from lm_helpers import tiny_llama

    other = audit(tiny_llama(task.tokenizer, seed=7), task, split, ["muse"], ctx=ctx)
    assert other["privleak"] == pytest.approx(privleak(other["mia_auc_mink"], m["mia_auc_mink"]))
    assert other["privleak_minkpp"] == pytest.approx(privleak(other["mia_auc_minkpp"], m["mia_auc_minkpp"]))


def test_rouge_with_planted_generations(setup, monkeypatch):
    source, split, task, model = setup
    gold = {}
    for name in ("verbmem_forget", "knowmem_forget", "knowmem_retain"):
        eval_set = source.evals[name]
        for ids, labels, answer in zip(eval_set.correct.x, eval_set.correct.y, eval_set.answers):
            prompt = ids[(labels == IGNORE) & (ids != task.pad_id)]
            gold[tuple(prompt.tolist())] = answer
    suffix = {"verbmem": "", "knowmem": "\n\nQuestion: and more"}   # knowmem output runs on: cut at the stop word

    def generate(model, batch, max_new_tokens=None):
        return [gold[tuple(p.tolist())] + (suffix["knowmem"] if max_new_tokens == 32 else "")
                for p in task.prompts(batch)]

    monkeypatch.setattr(task, "generate", generate)
    m = audit(model, task, split, ["muse"], ctx=AuditContext(batch_size=2))
    assert m["verbmem_f"] == m["knowmem_f"] == m["knowmem_r"] == pytest.approx(100.0)
