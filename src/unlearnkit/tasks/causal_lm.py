"""Causal language modelling: batches are ``(input_ids, labels)`` as built by :mod:`unlearnkit.data.text`.

Rows are right-padded with the tokenizer's pad id; ``labels`` is -100 on the prompt and on padding
and the token id on answer tokens (EOS included). The attention mask is ``input_ids != pad_id``.
Every per-example quantity is taken over the *answer* tokens only, with the usual causal shift:
the logits at position ``t`` score the label at ``t + 1`` (so a label on the very first token is
never scored; ``target_length`` counts only scored tokens).

- ``loss``            mean NLL of the answer tokens, ``[B]``
- ``log_likelihood``  sum of the answer tokens' log-probabilities, ``[B]`` (= -loss × target_length)
- ``log_probs``       log-distributions at every scored position of the batch, row-major, ``[P, V]``
- ``relabel``         the same prompts answered by a refusal (+ EOS), a seeded choice among ``refusals``
- ``generate``        greedy continuations of the prompts (answers removed), decoded and stripped

Columns that are padding in every row are trimmed per batch before the forward (the rows come
from one tensor padded to the longest example of the whole dataset). Log-softmax is computed in
float32 for half-precision models (bf16 logits lose too much in a log-softmax over a vocabulary),
in the model's own precision for float32/float64 ones.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.text import IGNORE
from ..errors import DataError
from .base import Task, capture_output


class CausalLMTask(Task):
    """The Task seam for ``transformers`` causal LMs called as ``model(input_ids=..., attention_mask=...)``."""

    kind = "text"

    def __init__(self, tokenizer, refusals: Sequence[str] = ("I don't know.",), max_new_tokens: int = 32):
        pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
        if pad is None or eos is None:
            raise DataError("CausalLMTask needs a tokenizer with a pad token and an EOS token")
        if pad == eos:
            raise DataError("the tokenizer's pad token equals its EOS token; give it a distinct pad token")
        if not refusals:
            raise DataError("CausalLMTask needs at least one refusal answer")
        self.tokenizer = tokenizer
        self.pad_id, self.eos_id = int(pad), int(eos)
        self.refusals = tuple(refusals)
        self.max_new_tokens = max_new_tokens
        # Each refusal encoded exactly as encode_qa encodes an answer: " " + text, then EOS.
        self._refusal_ids = [
            tokenizer(" " + text, add_special_tokens=False)["input_ids"] + [self.eos_id] for text in self.refusals
        ]

    # --- batches ---
    def to_device(self, batch, device):
        input_ids, labels = batch
        return input_ids.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    def batch_size(self, batch) -> int:
        return len(batch[0])

    def trim(self, batch):
        """Drop the trailing columns that are padding in every row."""
        input_ids, labels = batch
        real = (input_ids != self.pad_id).any(dim=0)
        if bool(real.all()):
            return input_ids, labels
        length = int(real.nonzero().max()) + 1 if bool(real.any()) else 1
        return input_ids[:, :length], labels[:, :length]

    def attention_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        return (input_ids != self.pad_id).long()

    def logits(self, model: nn.Module, batch) -> torch.Tensor:
        """Raw logits ``[B, T, V]`` of the (trimmed) batch, in the model's dtype."""
        input_ids, _ = self.trim(batch)
        return model(input_ids=input_ids, attention_mask=self.attention_mask(input_ids)).logits

    def _scored(self, model: nn.Module, batch):
        """Float32 log-distributions at the scored positions ``[P, V]``, their targets ``[P]``, rows ``[P]``."""
        input_ids, labels = self.trim(batch)
        logits = model(input_ids=input_ids, attention_mask=self.attention_mask(input_ids)).logits
        targets = labels[:, 1:]                      # the label at t+1 is scored by the logits at t
        mask = targets != IGNORE
        scored = logits[:, :-1][mask]                # only the answer positions
        if scored.dtype not in (torch.float32, torch.float64):
            scored = scored.float()                  # bf16/fp16 logits: log-softmax in float32
        log_p = F.log_softmax(scored, dim=-1)
        rows = mask.nonzero()[:, 0]
        return log_p, targets[mask], rows

    # --- per-example quantities ---
    def target_length(self, batch) -> torch.Tensor:
        return (batch[1][:, 1:] != IGNORE).sum(dim=1)

    def log_likelihood(self, model, batch) -> torch.Tensor:
        return self._row_log_likelihood(batch, *self._scored(model, batch))

    def _row_log_likelihood(self, batch, log_p, targets, rows) -> torch.Tensor:
        token_ll = log_p.gather(1, targets[:, None]).squeeze(1)
        return token_ll.new_zeros(self.batch_size(batch)).index_add(0, rows, token_ll)

    def _mean_nll(self, batch, log_likelihood: torch.Tensor) -> torch.Tensor:
        length = self.target_length(batch).to(batch[0].device)
        return -log_likelihood / length.clamp(min=1)

    def loss(self, model, batch) -> torch.Tensor:
        """Mean answer-token NLL per row (0 for a row with no scored answer token)."""
        return self._mean_nll(batch, self.log_likelihood(model, batch))

    def loss_and_log_probs(self, model, batch):
        log_p, targets, rows = self._scored(model, batch)
        return self._mean_nll(batch, self._row_log_likelihood(batch, log_p, targets, rows)), log_p

    def log_probs(self, model, batch) -> torch.Tensor:
        return self._scored(model, batch)[0]

    def correct(self, model, batch) -> torch.Tensor:
        """1.0 where every answer token is the argmax under teacher forcing."""
        log_p, targets, rows = self._scored(model, batch)
        wrong = (log_p.argmax(dim=-1) != targets).float()
        errors = wrong.new_zeros(self.batch_size(batch)).index_add(0, rows, wrong)
        return (errors == 0).float()

    def hidden(self, model, batch, layer: str, *, inputs: bool = False) -> torch.Tensor:
        """Output (``inputs=True``: input) of submodule ``layer`` (e.g. ``"model.layers.1"``), ``[B, T, H]``
        over the *untrimmed* batch, so rows from one dataset have the same length and line up with
        ``input_ids != pad``."""
        input_ids = batch[0]
        return capture_output(model, layer, lambda: model(input_ids=input_ids,
                                                          attention_mask=self.attention_mask(input_ids)),
                              inputs=inputs)

    def features(self, model, batch, layer: str | None = None) -> torch.Tensor:
        """The layer's output (default: the LM head's input, the last hidden state) averaged over each
        row's real (non-padding) tokens, ``[B, H]``."""
        h = self._hidden_or_head(model, batch, layer)
        mask = self.attention_mask(batch[0]).to(h.dtype)[..., None]
        return (h * mask).sum(1) / mask.sum(1).clamp_min(1)

    # --- building batches ---
    def prompts(self, batch) -> list[torch.Tensor]:
        """Each row's prompt: its tokens with label -100 that are not padding."""
        input_ids, labels = batch
        keep = (labels == IGNORE) & (input_ids != self.pad_id)
        return [ids[k] for ids, k in zip(input_ids, keep)]

    def _pack(self, rows: list[tuple[list[int], list[int]]], device) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
        for i, (ids, labs) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            labels[i, : len(labs)] = torch.tensor(labs, dtype=torch.long)
        return input_ids.to(device), labels.to(device)

    def relabel(self, batch, generator: torch.Generator | None = None):
        """The same prompts answered by a refusal + EOS (drawn per row with ``generator``), re-padded."""
        choice = torch.randint(len(self._refusal_ids), (self.batch_size(batch),), generator=generator)
        rows = []
        for prompt, k in zip(self.prompts(batch), choice.tolist()):
            prompt, reply = prompt.tolist(), self._refusal_ids[k]
            rows.append((prompt + reply, [IGNORE] * len(prompt) + reply))
        return self._pack(rows, batch[0].device)

    def concat(self, batches):
        """The batches stacked in order, each right-padded to the longest."""
        length = max(b[0].shape[1] for b in batches)
        ids = [F.pad(b[0], (0, length - b[0].shape[1]), value=self.pad_id) for b in batches]
        labels = [F.pad(b[1], (0, length - b[1].shape[1]), value=IGNORE) for b in batches]
        return torch.cat(ids), torch.cat(labels)

    # --- generation ---
    @torch.no_grad()
    def generate(self, model: nn.Module, batch, max_new_tokens: int | None = None) -> list[str]:
        """Greedy continuations of each row's prompt (its answer removed), stopped at EOS, decoded and stripped."""
        max_new_tokens = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        prompts = self.prompts(batch)
        device = batch[0].device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long, device=device)
        for i, prompt in enumerate(prompts):          # left padding: the next token follows every prompt at once
            input_ids[i, width - len(prompt):] = prompt
        attention_mask = self.attention_mask(input_ids)
        was_training = model.training
        model.eval()
        try:
            out = model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                do_sample=False, num_beams=1, pad_token_id=self.pad_id, eos_token_id=self.eos_id,
            )
        finally:
            model.train(was_training)
        answers = []
        for row in out[:, width:].tolist():
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            answers.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return answers
