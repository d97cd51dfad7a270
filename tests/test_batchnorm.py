"""BatchNorm re-estimation without dropout (train/batchnorm.py), on hand-computed cases."""

from __future__ import annotations

import torch
from torch import nn

from raysurvey.train.batchnorm import recalibrate_batchnorm


def dropout_then_bn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 3), nn.BatchNorm1d(3))


def test_statistics_become_the_dropout_free_batch_averages():
    model = dropout_then_bn()
    batches = [torch.randn(8, 4) * 3 + 1 for _ in range(5)]
    model.train()
    for x in batches:  # training passes: statistics of dropped-out activations
        model(x)
    linear, bn = model[1], model[2]
    with torch.no_grad():
        outs = [linear(x) for x in batches]  # what the layer sees with dropout off
    want_mean = torch.stack([o.mean(0) for o in outs]).mean(0)
    want_var = torch.stack([o.var(0, unbiased=True) for o in outs]).mean(0)
    assert not torch.allclose(bn.running_var, want_var, rtol=0.05)  # shifted before
    used = recalibrate_batchnorm(model, batches, lambda m, b: m(b))
    assert used == 5 and not model.training
    torch.testing.assert_close(bn.running_mean, want_mean)
    torch.testing.assert_close(bn.running_var, want_var)
    assert bn.momentum == 0.1  # restored for the next epoch's training
    with torch.no_grad():  # evaluation now normalises what it sees to ~zero mean
        z = model(torch.cat(batches))
    assert z.mean(0).abs().max() < 1e-5


def test_no_batchnorm_or_no_batch_changes_nothing():
    plain = nn.Sequential(nn.Linear(2, 2))
    assert recalibrate_batchnorm(plain, [torch.randn(4, 2)], lambda m, b: m(b)) == 0
    model = dropout_then_bn()
    model.train()
    model(torch.randn(8, 4))
    before = model[2].running_var.clone()
    assert recalibrate_batchnorm(model, [], lambda m, b: m(b)) == 0
    torch.testing.assert_close(model[2].running_var, before)
