"""A small byte-level BPE tokenizer trained here on the data's own text, saved as a real HF tokenizer.

Text sources that come without a tokenizer (tofu-mini, wmdp-mini, a TOFU folder given without a
``tokenizer/`` folder) get one trained with ``tokenizers`` (research/llm-stack.md §A.2: 0.4 s on
19 k generated lines, ~1.5 k tokens): a byte-level BPE (``pre_tokenizers.ByteLevel`` without a
prefix space, byte-level decoder, the 256-byte initial alphabet so any text encodes) with the
specials ``<pad>, <s>, </s>, <unk>`` at ids 0–3, wrapped in ``PreTrainedTokenizerFast`` with a pad
token of its own (a tokenizer without one pads with EOS: :mod:`unlearnkit.data.text`). It has no
chat template and its post-processor adds no BOS/EOS, so the data is encoded in the plain
``Question: …\nAnswer:`` format and :func:`~unlearnkit.data.text.encode_qa` appends EOS itself.

Training is deterministic for a given list of texts (same texts, same order → same vocabulary and
merges); :func:`cached_tokenizer` keys a cache folder by a hash of the texts and the settings so a
second run loads it with ``AutoTokenizer.from_pretrained(local_dir)`` instead of retraining.
The cache root is ``$UNLEARNKIT_CACHE`` or ``~/.cache/unlearnkit`` (:func:`cache_root`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..cache import cache_root
from ..errors import DataError
from ..extras import require

log = logging.getLogger(__name__)

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
DEFAULT_VOCAB_SIZE = 4096
# bump when the training recipe changes, so cached tokenizers from an older recipe are not reused
RECIPE_VERSION = 1


def _silence() -> None:
    require("transformers", "llm", "text data needs")
    from transformers.utils import logging

    logging.disable_progress_bar()


def train_tokenizer(texts: Sequence[str], vocab_size: int = DEFAULT_VOCAB_SIZE):
    """Train a byte-level BPE on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    The vocabulary stops below ``vocab_size`` when the corpus runs out of merges (a generated
    corpus of 1,000 QA gives ~1.5 k tokens)."""
    require("tokenizers", "llm", "text data needs")
    require("transformers", "llm", "text data needs")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    _silence()
    texts = [t for t in texts if t]
    if not texts:
        raise DataError("cannot train a tokenizer on no text")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    assert (wrapped.pad_token_id, wrapped.bos_token_id, wrapped.eos_token_id, wrapped.unk_token_id) == (0, 1, 2, 3)
    return wrapped


def build_folder(directory: str | Path, write: Callable[[Path], None]) -> Path:
    """Create ``directory`` atomically: ``write(tmp)`` fills a temporary sibling folder that is then
    renamed into place, so a crash never leaves a half-written folder under the final name.
    An existing ``directory`` (e.g. made by a concurrent process) is kept as it is."""
    directory = Path(directory)
    if directory.is_dir():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        write(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        try:
            os.rename(tmp, directory)
        except OSError:
            if not directory.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def save_tokenizer(tokenizer, directory: str | Path) -> Path:
    """``save_pretrained`` into a new folder, atomically (see :func:`build_folder`)."""
    return build_folder(directory, lambda tmp: tokenizer.save_pretrained(str(tmp)))


def load_tokenizer(directory: str | Path):
    """``AutoTokenizer.from_pretrained`` on a local folder (never the hub). It must have an EOS token;
    one without a pad token pads with EOS (:func:`~unlearnkit.data.text.ensure_pad_token`)."""
    require("transformers", "llm", "text data needs")
    from transformers import AutoTokenizer

    _silence()
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"tokenizer folder not found: {directory}")
    if not any((directory / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        raise DataError(f"{directory} holds no tokenizer (expected tokenizer.json / tokenizer_config.json "
                        "as written by save_pretrained)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:  # transformers raises many kinds for a broken folder
        raise DataError(f"cannot load the tokenizer in {directory}: {exc}") from None
    if tokenizer.eos_token_id is None:
        raise DataError(f"the tokenizer in {directory} has no EOS token (answers and texts end with it)")
    from .text import ensure_pad_token

    return ensure_pad_token(tokenizer)  # no pad token: pad with EOS (masks come from positions and labels)


def texts_digest(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> str:
    """A short hash of the training texts (in order) and the tokenizer settings."""
    tokenizers = require("tokenizers", "llm", "text data needs")

    h = hashlib.sha256()
    h.update(json.dumps({"vocab": vocab_size, "specials": SPECIALS, "recipe": RECIPE_VERSION,
                         "tokenizers": tokenizers.__version__}).encode())
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def cached_tokenizer(texts: Sequence[str], vocab_size: int = DEFAULT_VOCAB_SIZE, *, cache: str | Path | None = None):
    """The tokenizer trained on ``texts``, from ``<cache>/tokenizers/<hash>/`` if it is there,
    else trained now and saved there (atomically) for the next run."""
    root = Path(cache) if cache is not None else cache_root() / "tokenizers"
    directory = root / f"bpe-{texts_digest(texts, vocab_size)}"
    if directory.is_dir():
        return load_tokenizer(directory)
    tokenizer = train_tokenizer(texts, vocab_size)
    try:
        save_tokenizer(tokenizer, directory)
    except OSError as exc:  # a read-only cache: use the tokenizer without keeping it
        log.warning("could not cache the tokenizer in %s (%s); it will be retrained next time", directory, exc)
        return tokenizer
    return load_tokenizer(directory)
