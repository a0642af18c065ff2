"""``CPUAmpOptimWrapper`` skips the update of a step whose gradients are not finite, as ``GradScaler`` does."""
import pytest
import torch
from torch import nn

import mmkd  # noqa: F401
from mmkd.engine.optim_wrappers import CPUAmpOptimWrapper


def wrapper_and_model():
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    return CPUAmpOptimWrapper(optimizer=optimizer), model


def loss_of(model, poison: bool = False):
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(torch.randn(8, 4)).float().pow(2).mean()
    return out * float('nan') if poison else out


def test_non_finite_gradients_skip_the_update_and_are_counted():
    wrapper, model = wrapper_and_model()
    wrapper.update_params(loss_of(model))  # momentum buffers now exist: a zero gradient would still move weights
    before = [p.detach().clone() for p in model.parameters()]
    wrapper.update_params(loss_of(model, poison=True))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert wrapper.skipped_steps == 1
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # cleared for the next step
    wrapper.update_params(loss_of(model))
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert wrapper.skipped_steps == 1 and all(torch.isfinite(p).all() for p in model.parameters())


def test_only_bfloat16_is_accepted():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match='bfloat16 only'):
        CPUAmpOptimWrapper(dtype='float16', optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
