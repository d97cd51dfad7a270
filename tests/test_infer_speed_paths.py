"""spec_cnn's CPU inference fast path (folded batch-norm, merged embedding) gives the
plain model's logits and features, and never leaks into training or the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysurvey.calibration import logits_and_features
from raysurvey.labels import CLASS3
from raysurvey.models import create_model, prepare_inference
from raysurvey.models.bundle import load_bundle, save_bundle
from raysurvey.models.spec_cnn import fold_batchnorm, fold_linears


def _trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial batch-norm statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
            with torch.no_grad():
                module.weight.copy_(torch.rand(n, generator=g) + 0.5)
                module.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


def test_fold_batchnorm_equals_conv_then_bn():
    conv, bn = torch.nn.Conv1d(3, 5, 4), torch.nn.BatchNorm1d(5)
    _trained_like(torch.nn.Sequential(conv, bn))
    x = torch.randn(2, 3, 40)
    weight, bias = fold_batchnorm(conv, bn)
    with torch.no_grad():
        expected = bn(conv(x))
        folded = torch.nn.functional.conv1d(x, weight, bias)
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5)


def test_fold_linears_equals_the_two_layers():
    first, second = torch.nn.Linear(7, 6), torch.nn.Linear(6, 3)
    x = torch.randn(4, 7)
    with torch.no_grad():
        torch.testing.assert_close(fold_linears(first, second)(x), second(first(x)))


@pytest.mark.parametrize("attention", ["coord", "none"])
def test_spec_cnn_fast_path_matches_the_plain_model(attention):
    torch.manual_seed(0)
    model = _trained_like(create_model("spec_cnn", num_classes=3, attention=attention))
    x = {"flux1d": torch.randn(6, 1, 3700)}
    plain_logits, plain_feats = logits_and_features(model, x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    prepare_inference(model)
    assert model._folded, "prepare_inference built no fast path"
    fast_logits, fast_feats = logits_and_features(model, x)
    np.testing.assert_allclose(fast_logits, plain_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fast_feats, plain_feats, rtol=1e-4, atol=1e-4)
    assert not np.array_equal(fast_logits, plain_logits)  # the fast path really ran
    assert state.keys() == model.state_dict().keys()  # no new weights saved
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_fast_path_is_dropped_for_training_and_gradients():
    torch.manual_seed(1)
    model = _trained_like(create_model("spec_cnn", num_classes=3))
    prepare_inference(model)
    x = torch.randn(2, 1, 3700)
    with torch.enable_grad():
        model(x).sum().backward()  # autograd: the plain path, gradients reach the weights
    assert model.features[0].weight.grad is not None
    model.train()
    assert not model._folded


def test_load_bundle_prepares_on_request(tmp_path):
    torch.manual_seed(2)
    model = _trained_like(create_model("spec_cnn", num_classes=3))
    save_bundle(model, str(tmp_path / "b"), labels=list(CLASS3))
    plain = load_bundle(str(tmp_path / "b"))
    fast = load_bundle(str(tmp_path / "b"), prepare_inference=True)
    assert not plain.model._folded and fast.model._folded
    x = torch.randn(3, 1, 3700)
    with torch.inference_mode():
        torch.testing.assert_close(fast.model(x), plain.model(x), rtol=1e-4, atol=1e-4)
