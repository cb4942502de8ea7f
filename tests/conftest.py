import os

import pytest
import torch

torch.set_num_threads(1)

from unlearnkit import ClassificationTask, build_model, fit, load_data, make_split  # noqa: E402
from unlearnkit.methods import RunContext, TrainConfig  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("CI", os.environ.get("CI", "1"))


@pytest.fixture(scope="session")
def digits():
    return load_data("digits")


@pytest.fixture(scope="session")
def task(digits):
    return ClassificationTask(digits.num_classes)


@pytest.fixture(scope="session")
def trained_mlp(digits, task):
    """An MLP trained briefly on all of digits (the 'original' model of the tests)."""
    model = build_model("mlp", digits.input_shape, digits.num_classes, seed=0)
    # the data order of a default torch.Generator(), as the tests were calibrated on
    fit(model, task, digits.train, TrainConfig(epochs=8, lr=0.05), RunContext(generator=torch.Generator()))
    return model.eval()


@pytest.fixture(scope="session")
def class_split(digits):
    return make_split(digits, "class:0")


@pytest.fixture(scope="session")
def tok():
    """The tiny byte-level BPE tokenizer of the LM tests (lm_helpers.tiny_tokenizer)."""
    pytest.importorskip("transformers").utils.logging.disable_progress_bar()
    from lm_helpers import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="session")
def lm_task(tok):
    from unlearnkit.tasks.causal_lm import CausalLMTask

    return CausalLMTask(tok)


@pytest.fixture
def write_images():
    """``write_images(root, classes=("ant", "bee", "cow"), train=6, test=2, size=8)``: an image folder
    (``root/{train,test}/<class>/<i>.png``, random RGB pixels from a generator seeded per test); returns ``root``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)

    def write(root, classes=("ant", "bee", "cow"), train=6, test=2, size=8):
        for split, count in (("train", train), ("test", test)):
            for name in classes:
                for i in range(count):
                    path = root / split / name / f"{i}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        return root

    return write
