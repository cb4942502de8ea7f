"""Mixed precision, channels-last and compile switches of the shared loop."""
import pytest
import torch

import unlearnkit as uk
from unlearnkit.errors import ConfigError
from unlearnkit.methods import RunContext
from unlearnkit.methods.precision import Precision


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _run(task, split, model, method, precision, **hp):
    ctx = RunContext(precision=precision)
    return uk.unlearn(model, task, split, method=method, ctx=ctx, epochs=1, **hp)


def test_bf16_autocast_runs_close_to_float32(task, digits):
    split = uk.make_split(digits, "class:0")
    model = uk.build_model("cnn", digits.input_shape, digits.num_classes, seed=0)
    full = _run(task, split, model, "finetune", Precision())
    bf16 = _run(task, split, model, "finetune", Precision(amp="bf16"))
    assert not torch.equal(_params(full), _params(bf16))  # autocast really ran in bfloat16
    assert all(p.dtype == torch.float32 for p in bf16.parameters())  # master weights stay float32
    assert torch.allclose(_params(full), _params(bf16), atol=0.05)


def test_fp16_needs_the_loop_backward(task, digits):
    split = uk.make_split(digits, "class:0")
    model = uk.build_model("mlp", digits.input_shape, digits.num_classes, seed=0)
    with pytest.raises(ConfigError, match="bf16"):
        _run(task, split, model, "uam", Precision(amp="fp16"))
    with pytest.raises(ConfigError, match="amp must be"):
        Precision(amp="fp8")


def test_channels_last_gives_the_same_result(task, digits):
    split = uk.make_split(digits, "class:0")
    model = uk.build_model("cnn", digits.input_shape, digits.num_classes, seed=0)
    plain = _run(task, split, model, "ga", Precision())
    cl = _run(task, split, model, "ga", Precision(channels_last=True))
    assert torch.allclose(_params(plain), _params(cl), atol=1e-4)
    conv = next(p for p in cl.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)


def test_gradient_checkpointing_switch_on_a_language_model():
    pytest.importorskip("transformers").utils.logging.disable_progress_bar()
    from lm_helpers import text_source, tiny_llama, tiny_tokenizer
    from unlearnkit.models.hf import is_checkpointing
    from unlearnkit.tasks.causal_lm import CausalLMTask

    tok = tiny_tokenizer()
    source = text_source(tok, n=12, n_forget=4)
    split = uk.make_split(source, "forget")
    model = tiny_llama(tok, seed=0)
    out = uk.unlearn(model, CausalLMTask(tok), split, method="ga", ctx=RunContext(precision=Precision(checkpointing=True)),
                     epochs=1, batch_size=4)
    plain = uk.unlearn(model, CausalLMTask(tok), split, method="ga", epochs=1, batch_size=4)
    assert is_checkpointing(out) and not is_checkpointing(model)
    assert torch.allclose(_params(out), _params(plain), atol=1e-5)  # same arithmetic, recomputed
    with pytest.raises(ConfigError, match="Hugging Face"):
        Precision(checkpointing=True).prepare(uk.build_model("mlp", (1, 8, 8), 10))
