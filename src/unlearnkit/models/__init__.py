"""Architectures in plain torch, registered by name."""
from . import classifiers  # noqa: F401  (registers mlp, cnn)
from . import resnet, vgg, vit  # noqa: F401  (registers resnet18, resnet18_imagenet, vgg16_bn, vit_small)
from .hf import LANGUAGE_MODELS, build_lm, load_hf_model, load_hf_tokenizer, save_hf_model
from .registry import MODELS, build_model, reinitialise

__all__ = ["LANGUAGE_MODELS", "MODELS", "build_lm", "build_model", "load_hf_model", "load_hf_tokenizer",
           "reinitialise", "save_hf_model"]
