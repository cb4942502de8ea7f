"""Causal language modelling: batches are ``(input_ids, labels)`` as built by :mod:`unlearnkit.data.text`.

Rows are right-padded with the tokenizer's pad id (its EOS id when it has no pad token); ``labels``
is -100 on the prompt and on padding and the token id on answer tokens (EOS included). The
attention mask comes from positions and labels, not from the pad id alone
(:func:`unlearnkit.data.text.attention_mask`: a row's padding is its trailing run of unlabelled
pad ids), so pad = EOS is fine: a row's labelled final EOS and the EOS tokens inside a chat
prompt stay attended.
Every per-example quantity is taken over the *answer* tokens only, with the usual causal shift:
the logits at position ``t`` score the label at ``t + 1`` (so a label on the very first token is
never scored; ``target_length`` counts only scored tokens).

- ``loss``            mean NLL of the answer tokens, ``[B]``
- ``log_likelihood``  sum of the answer tokens' log-probabilities, ``[B]`` (= -loss × target_length)
- ``log_probs``       log-distributions at every scored position of the batch, row-major, ``[P, V]``
- ``relabel``         the same prompts answered by a refusal (+ EOS), a seeded choice among ``refusals``,
                      encoded as the data encodes answers (``prompt_format``, as in ``encode_qa``)
- ``generate``        greedy continuations of the prompts (answers removed), left-padded into one
                      batch, at most ``max_new_tokens`` (default 200, OpenUnlearning's TOFU setting),
                      cut at EOS (or any end-of-sequence id of the model's generation config),
                      decoded and stripped

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

from ..data.text import IGNORE, PromptFormat, attention_mask, pad_id_of
from ..errors import ConfigError, DataError
from .base import Task, capture_output

# OpenUnlearning's TOFU generation setting (configs/generation/default.yaml; research/llm-stack.md §B.2)
DEFAULT_MAX_NEW_TOKENS = 200


class CausalLMTask(Task):
    """The Task seam for ``transformers`` causal LMs called as ``model(input_ids=..., attention_mask=...)``.

    ``prompt_format`` / ``system_prompt``: how the data's answers were encoded (``"auto"``: the
    tokenizer's chat template if it has one), so refusals (``relabel``) are encoded the same way.
    ``max_new_tokens``: the cap of :meth:`generate`."""

    kind = "text"

    def __init__(self, tokenizer, refusals: Sequence[str] = ("I don't know.",),
                 max_new_tokens: int | None = DEFAULT_MAX_NEW_TOKENS, prompt_format: str = "auto",
                 system_prompt: str | None = None):
        if tokenizer.eos_token_id is None:
            raise DataError("CausalLMTask needs a tokenizer with an EOS token")
        if not refusals:
            raise DataError("CausalLMTask needs at least one refusal answer")
        max_new_tokens = DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        self.tokenizer = tokenizer
        self.pad_id, self.eos_id = pad_id_of(tokenizer), int(tokenizer.eos_token_id)  # no pad token: EOS pads
        self.refusals = tuple(refusals)
        self.max_new_tokens = max_new_tokens
        self.format = PromptFormat.of(tokenizer, prompt_format, system_prompt)
        # Each refusal encoded exactly as encode_qa encodes an answer (plain: " " + text), then EOS.
        self._refusal_ids = [self.format.answer_ids(tokenizer, text, self.eos_id) for text in self.refusals]

    # --- batches ---
    def to_device(self, batch, device):
        input_ids, labels = batch
        return input_ids.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    def batch_size(self, batch) -> int:
        return len(batch[0])

    def trim(self, batch):
        """Drop the trailing columns that are padding in every row."""
        input_ids, labels = batch
        real = self.attention_mask(input_ids, labels).bool().any(dim=0)
        if bool(real.all()):
            return input_ids, labels
        length = int(real.nonzero().max()) + 1 if bool(real.any()) else 1
        return input_ids[:, :length], labels[:, :length]

    def attention_mask(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """1 on real tokens, 0 on each row's padding: its trailing run of pad ids that carry no label
        (without ``labels``: its trailing run of pad ids, which with pad = EOS also drops a final EOS)."""
        return attention_mask(input_ids, labels, self.pad_id)

    def logits(self, model: nn.Module, batch) -> torch.Tensor:
        """Raw logits ``[B, T, V]`` of the (trimmed) batch, in the model's dtype."""
        input_ids, labels = self.trim(batch)
        return model(input_ids=input_ids, attention_mask=self.attention_mask(input_ids, labels)).logits

    def _scored(self, model: nn.Module, batch):
        """Float32 log-distributions at the scored positions ``[P, V]``, their targets ``[P]``, rows ``[P]``."""
        input_ids, labels = self.trim(batch)
        logits = model(input_ids=input_ids, attention_mask=self.attention_mask(input_ids, labels)).logits
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
        the attention mask. A model on another device (a frozen reference kept elsewhere,
        ``methods/reference_model.py``) has its activations brought to the batch's device."""
        input_ids, labels = batch
        mask = self.attention_mask(input_ids, labels)
        h = capture_output(model, layer, lambda: model(input_ids=input_ids, attention_mask=mask), inputs=inputs)
        return h.to(input_ids.device) if torch.is_tensor(h) and h.device != input_ids.device else h

    def features(self, model, batch, layer: str | None = None) -> torch.Tensor:
        """The layer's output (default: the LM head's input, the last hidden state) averaged over each
        row's real (non-padding) tokens, ``[B, H]``."""
        h = self._hidden_or_head(model, batch, layer)
        mask = self.attention_mask(*batch).to(h.dtype)[..., None]
        return (h * mask).sum(1) / mask.sum(1).clamp_min(1)

    # --- building batches ---
    def prompts(self, batch) -> list[torch.Tensor]:
        """Each row's prompt: its tokens with label -100 that are not padding."""
        input_ids, labels = batch
        keep = (labels == IGNORE) & self.attention_mask(input_ids, labels).bool()
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
    def stop_ids(self, model: nn.Module | None = None) -> list[int]:
        """The ids that end an answer: the tokenizer's EOS, then any other end-of-sequence id of the
        model's generation config (chat models often list several, e.g. end-of-turn and end-of-text)."""
        ids = [self.eos_id]
        config = getattr(model, "generation_config", None)
        extra = getattr(config, "eos_token_id", None) if config is not None else None
        for i in ([extra] if isinstance(extra, int) else list(extra or [])):
            if int(i) not in ids:
                ids.append(int(i))
        return ids

    @torch.no_grad()
    def generate(self, model: nn.Module, batch, max_new_tokens: int | None = None) -> list[str]:
        """Greedy continuations of each row's prompt (its answer removed), stopped at EOS, decoded and stripped.

        The prompts are left-padded into one batch with an attention mask built from their lengths
        (never from the pad id, which may equal EOS), so every row's next token follows its prompt
        directly and a row generates what it would alone."""
        max_new_tokens = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        prompts = self.prompts(batch)
        device = batch[0].device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long, device=device)
        attention = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
        for i, prompt in enumerate(prompts):          # left padding: the next token follows every prompt at once
            input_ids[i, width - len(prompt):] = prompt
            attention[i, width - len(prompt):] = 1
        stops = self.stop_ids(model)
        was_training = model.training
        model.eval()
        try:
            out = model.generate(
                input_ids=input_ids, attention_mask=attention, max_new_tokens=max_new_tokens,
                do_sample=False, num_beams=1, pad_token_id=self.pad_id,
                eos_token_id=stops if len(stops) > 1 else stops[0],
            )
        finally:
            model.train(was_training)
        answers = []
        for row in out[:, width:].tolist():
            end = next((k for k, token in enumerate(row) if token in stops), len(row))
            answers.append(self.tokenizer.decode(row[:end], skip_special_tokens=True).strip())
        return answers
