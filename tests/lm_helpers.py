"""Shared helpers for tests that need a language model: a tiny tokenizer and a tiny random Llama.

Everything is built in memory, offline, in well under a second:

- :func:`tiny_tokenizer` trains a byte-level BPE (specials ``<pad>,<s>,</s>,<unk>`` -> ids 0-3) on
  :data:`SENTENCES` (plus any extra lines) and wraps it in ``PreTrainedTokenizerFast``. The pad id
  (0) differs from EOS (2), as the text contract requires. Cached per argument tuple.
- :func:`tiny_llama` builds a ``LlamaForCausalLM`` (hidden 32, 2 layers, 4 heads, 4x MLP, tied embeddings,
  eager attention) seeded for reproducibility, through ``unlearnkit.models.hf.tiny_llama``.
- :func:`memorise` trains a model on one batch until it reproduces the answers; :func:`memorised_lm`
  fits one on a small QA source (the ``lm`` fixture of the method tests); :func:`answer_log_likelihood`
  scores answers straight from a model's logits.
- :func:`qa_pairs` / :func:`qa_data` generate a small fictitious-author QA set and encode it with
  :func:`unlearnkit.data.text.encode_qa`.
- :func:`text_source` wraps a QA set in a ``DataSource(kind="text")`` with a named split
  ``"forget"`` (the first ``n_forget`` rows) so ``make_split(source, "forget")`` works.
"""
from __future__ import annotations

import functools

import torch

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]

FIRST = ["Ada", "Bram", "Cora", "Dov", "Elin", "Farid", "Gala", "Hugo", "Ines", "Jory", "Kemi", "Lior"]
LAST = ["Marsh", "Quill", "Tarn", "Vesk", "Orrin", "Pell", "Brook", "Sable", "Wren", "Holt", "Crane", "Dusk"]
CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Perth", "Tunis", "Riga", "Lima"]
GENRES = ["poetry", "mystery", "fantasy", "history", "satire", "horror"]

SENTENCES = [
    "Question: Where was the author born?\nAnswer: The author was born in Lisbon.",
    "Question: What genre does the author write?\nAnswer: The author writes mystery novels.",
    "I don't know. I cannot answer that. I have no idea.",
    "The quick brown fox jumps over the lazy dog.",
    "Unlearning removes what a model learnt from some examples.",
] + [f"{f} {l} was born in {c} and writes {g}." for f, l, c, g in zip(FIRST, LAST, CITIES * 2, GENRES * 2)]


@functools.lru_cache(maxsize=4)
def tiny_tokenizer(extra: tuple[str, ...] = (), vocab_size: int = 400):
    """A byte-level BPE trained on :data:`SENTENCES` + ``extra``, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(SENTENCES) + list(extra), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    assert (wrapped.pad_token_id, wrapped.bos_token_id, wrapped.eos_token_id) == (0, 1, 2)
    return wrapped


def tiny_llama(tokenizer, *, hidden: int = 32, layers: int = 2, heads: int = 4, max_positions: int = 128, seed: int = 0):
    """:func:`unlearnkit.models.hf.tiny_llama` sized for fast CPU tests (hidden 32, eager attention), eval mode."""
    from unlearnkit.models.hf import tiny_llama as build

    return build(tokenizer, hidden, layers, heads, max_positions, seed=seed).eval()


def qa_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` (question, answer) pairs about fictitious authors, deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    questions, answers = [], []
    for i in range(n):
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST) + i) % len(LAST)]}"
        if torch.randint(2, (1,), generator=g).item():
            city = CITIES[torch.randint(len(CITIES), (1,), generator=g).item()]
            questions.append(f"Where was {name} born?")
            answers.append(f"{name} was born in {city}.")
        else:
            genre = GENRES[torch.randint(len(GENRES), (1,), generator=g).item()]
            questions.append(f"What genre does {name} write?")
            answers.append(f"{name} writes {genre}.")
    return questions, answers


def qa_data(tokenizer, n: int = 8, seed: int = 0):
    """``encode_qa`` of :func:`qa_pairs` (a ``TensorData`` of ``input_ids`` / answer-only ``labels``)."""
    from unlearnkit.data.text import encode_qa

    return encode_qa(tokenizer, *qa_pairs(n, seed))


def qa_batch(tokenizer, n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``(input_ids, labels)`` batch of ``n`` QA rows."""
    data = qa_data(tokenizer, n, seed)
    return data.x, data.y


def text_source(tokenizer, n: int = 24, n_forget: int = 4, n_test: int = 4, seed: int = 0, name: str = "forget"):
    """A ``DataSource(kind="text")`` of ``n`` train QA rows (+ ``n_test`` test rows) with a named split.

    ``named_splits[name] = (first n_forget rows, the rest)``. Use ``make_split(source, name)``.
    """
    from unlearnkit.data.sources import DataSource

    train = qa_data(tokenizer, n, seed)
    test = qa_data(tokenizer, n_test, seed + 1000)
    forget = torch.arange(n_forget)
    retain = torch.arange(n_forget, n)
    return DataSource(
        name="tiny-qa", train=train, test=test, num_classes=len(tokenizer), input_shape=tuple(train.x.shape[1:]),
        kind="text", tokenizer=tokenizer, named_splits={name: (forget, retain)},
    )


def memorise(model, tokenizer, batch, steps: int = 40, lr: float = 1e-2, optimizer=torch.optim.AdamW):
    """Train ``model`` in place on one ``(input_ids, labels)`` batch until it reproduces the answers
    (40 AdamW steps suffice for 4 rows on the default :func:`tiny_llama`, ~0.3 s); returns it in eval mode.
    ``optimizer``: the optimizer class, built with ``lr`` and its own defaults otherwise."""
    from unlearnkit.tasks.causal_lm import CausalLMTask

    task = CausalLMTask(tokenizer)
    optimizer = optimizer(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        task.loss(model, batch).mean().backward()
        optimizer.step()
    return model.eval()



def memorised_lm(**task_options):
    """``(task, split, model)``: a :func:`tiny_llama` (seed 0) fitted for 60 AdamW epochs on the 16 QA
    rows of a :func:`text_source` (the first 4 the ``"forget"`` split), in eval mode; ``task`` a
    ``CausalLMTask`` on :func:`tiny_tokenizer` with ``task_options`` (e.g. ``refusals``)."""
    import transformers

    from unlearnkit import make_split
    from unlearnkit.methods.base import RunContext
    from unlearnkit.methods.training import TrainConfig, fit
    from unlearnkit.tasks.causal_lm import CausalLMTask

    transformers.utils.logging.disable_progress_bar()
    tok = tiny_tokenizer()
    task = CausalLMTask(tok, **task_options)
    split = make_split(text_source(tok, n=16, n_forget=4), "forget")
    model = tiny_llama(tok, seed=0)
    fit(model, task, split.source.train, TrainConfig(epochs=60, lr=1e-2, optimizer="adamw", batch_size=8),
        RunContext())
    return task, split, model.eval()


def answer_log_likelihood(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: Σ over answer tokens of log π(token | prefix), straight from the logits (not the Task),
    and the number of answer tokens."""
    import torch.nn.functional as F

    from unlearnkit.data.text import IGNORE

    input_ids, labels = batch
    logits = model(input_ids=input_ids, attention_mask=(input_ids != 0).long()).logits[:, :-1]
    target = labels[:, 1:]
    mask = target != IGNORE
    token_ll = F.log_softmax(logits.float(), -1).gather(2, target.clamp(min=0)[..., None]).squeeze(2)
    return (token_ll * mask).sum(1), mask.sum(1)

# --- a checkpoint saved the way real ones are (tests/test_real_checkpoints.py) ------------------

# Llama-3-Instruct's chat layout: the template writes BOS itself; each turn ends with <|eot_id|> (EOS)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def chat_tokenizer():
    """A new copy of :func:`tiny_tokenizer` dressed as a Llama-3-Instruct tokenizer: the Llama-3
    specials, a post-processor that puts ``<|begin_of_text|>`` (BOS) in front of plain text, the
    Llama-3 chat template (which writes BOS itself), EOS ``<|eot_id|>`` and **no pad token**."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tiny_tokenizer().backend_tokenizer.to_str())
    backend.add_special_tokens(LLAMA3_SPECIALS)
    bos = backend.token_to_id(LLAMA3_SPECIALS[0])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{LLAMA3_SPECIALS[0]} $A", pair=f"{LLAMA3_SPECIALS[0]} $A {LLAMA3_SPECIALS[0]} $B",
        special_tokens=[(LLAMA3_SPECIALS[0], bos)])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=LLAMA3_SPECIALS[0],
                                      eos_token=LLAMA3_SPECIALS[3], unk_token="<unk>")
    wrapped.chat_template = LLAMA3_TEMPLATE
    assert wrapped.pad_token is None and wrapped.bos_token_id == bos
    return wrapped


def save_real_checkpoint(directory, tokenizer, *, hidden: int = 64, layers: int = 2, max_positions: int = 512,
                         dtype=torch.bfloat16, max_shard_size: str = "200KB", seed: int = 0):
    """A random tiny ``LlamaForCausalLM`` (tied embeddings) saved as real checkpoints are: sharded
    safetensors (``model-0000k-of-0000n.safetensors`` + index) in ``dtype`` (``torch_dtype`` in its
    config.json), with ``tokenizer`` beside it. Returns the model as saved (in ``dtype``)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model = model.to(dtype).eval()
    model.save_pretrained(str(directory), max_shard_size=max_shard_size)
    tokenizer.save_pretrained(str(directory))
    return model
