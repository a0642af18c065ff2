import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def randomise_batchnorms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm of ``module`` running statistics and affine parameters far from their identity-like
    initial values (so that folding or skipping a BN changes the output), and put ``module`` in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
            m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            if m.affine:
                m.weight.data.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)
    return module.eval()
