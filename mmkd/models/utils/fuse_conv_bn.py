"""Folding a frozen network's eval-mode BatchNorm layers into the convolutions that feed them.

A BatchNorm in eval mode is an affine map per channel, ``y = (x - mu) * g / sqrt(var + eps) + b``; after a
convolution ``x = W * z + c`` it folds into that convolution:
``W' = W * s``, ``c' = (c - mu) * s + b`` with ``s = g / sqrt(var + eps)`` per output channel. The frozen teacher
then skips one full read and write of every BatchNorm's activation map (``tools/analysis/benchmark_distill.py``
shows the effect on a whole distillation step).

mmcv's ``fuse_conv_bn`` pairs a BatchNorm with the convolution *registered* just before it, which is wrong for
any module whose registration order differs from its data flow. Here the pairs come from the data flow: one
traced forward records, for every BatchNorm, whether its input is exactly the (unmodified) output tensor of a
convolution; only such 1:1 pairs, each called once in the trace, are folded. A convolution whose output is also
read elsewhere (a skip connection that bypasses the BatchNorm) cannot be told apart by hooks, so the fused model
is checked against the traced outputs and refused when they differ.

A fused module keeps loading state dicts written before the fusion (or by a model built without it): the
BatchNorm entries of every folded pair are folded into its convolution's entries on load.
"""
import functools
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def _tensors(out: Any) -> List[Tensor]:
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return []


def trace_conv_bn_pairs(module: nn.Module, run: Callable[[], Any]) -> Tuple[List[Tuple[str, str]], Any]:
    """``(conv name, bn name)`` pairs of ``module`` where the BatchNorm reads exactly the convolution's output.

    ``run`` calls ``module`` (in eval mode) once on a fixed input, e.g. ``lambda: model.extract_feat(x)`` with
    ``x = torch.randn(1, 3, 64, 64)`` made beforehand; its return value is returned too. A pair qualifies when
    both modules ran exactly once, the BatchNorm's input is the convolution's output tensor unchanged since (no
    in-place op between them), no other BatchNorm read it, the BatchNorm uses running statistics, and its width
    equals the convolution's output channels.
    """
    convs = {n: m for n, m in module.named_modules() if isinstance(m, nn.Conv2d)}
    bns = {n: m for n, m in module.named_modules()
           if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None}
    produced: Dict[int, Tuple[str, Tensor, int]] = {}  # id(output) -> (conv, output kept alive, its version)
    reads: Dict[str, Optional[str]] = {}
    calls: Counter = Counter()

    def conv_hook(name):
        def hook(_, __, out):
            calls[name] += 1
            if torch.is_tensor(out):
                produced[id(out)] = (name, out, out._version)
        return hook

    def bn_hook(name):
        def hook(_, args):
            calls[name] += 1
            x = args[0] if args else None
            entry = produced.get(id(x))
            reads[name] = entry[0] if entry is not None and entry[1] is x and x._version == entry[2] else None
        return hook

    handles = [m.register_forward_hook(conv_hook(n)) for n, m in convs.items()]
    handles += [m.register_forward_pre_hook(bn_hook(n)) for n, m in bns.items()]
    try:
        with torch.no_grad():
            out = run()
    finally:
        for h in handles:
            h.remove()
    conv_uses = Counter(c for c in reads.values() if c is not None)
    pairs = [(c, b) for b, c in reads.items()
             if c is not None and calls[b] == 1 and calls[c] == 1 and conv_uses[c] == 1
             and bns[b].num_features == convs[c].out_channels]
    return pairs, out


def _fold(weight: Tensor, bias: Optional[Tensor], bn_weight: Optional[Tensor], bn_bias: Optional[Tensor],
          running_mean: Tensor, running_var: Tensor, eps: float) -> Tuple[Tensor, Tensor]:
    """``(W', c')`` of a convolution ``(W, c)`` followed by an eval-mode BatchNorm, computed in float64 and
    returned in ``weight``'s dtype: ``s = g / sqrt(var + eps)``, ``W' = W * s``, ``c' = (c - mu) * s + b``."""
    scale = bn_weight.double() if bn_weight is not None else torch.ones_like(running_var, dtype=torch.float64)
    scale = scale / torch.sqrt(running_var.double() + eps)
    shift = (bn_bias.double() if bn_bias is not None else 0.) - running_mean.double() * scale
    new_bias = shift if bias is None else bias.double() * scale + shift
    new_weight = weight.double() * scale.view(-1, *([1] * (weight.dim() - 1)))
    return new_weight.to(weight.dtype), new_bias.to(weight.dtype)


_BN_ENTRIES = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def _fold_unfused_entries(pairs: List[Tuple[str, str, float]], state_dict: Dict[str, Tensor], prefix: str,
                          *args) -> None:
    """Load-state-dict pre-hook of a fused module: a state dict in the unfused layout (``<bn>.running_mean``
    present for a folded pair) gets that BatchNorm folded into its convolution's entries, as
    :func:`fuse_conv_bn_` folded the module's own; a state dict in the fused layout passes unchanged."""
    for conv, bn, eps in pairs:
        conv_key, bn_key = f'{prefix}{conv}.', f'{prefix}{bn}.'
        if f'{bn_key}running_mean' not in state_dict or f'{conv_key}weight' not in state_dict:
            continue
        bn_state = {name: state_dict.pop(bn_key + name, None) for name in _BN_ENTRIES}
        weight, bias = _fold(state_dict[f'{conv_key}weight'], state_dict.get(f'{conv_key}bias'),
                             bn_state['weight'], bn_state['bias'], bn_state['running_mean'],
                             bn_state['running_var'], eps)
        state_dict[f'{conv_key}weight'], state_dict[f'{conv_key}bias'] = weight, bias


@torch.no_grad()
def fuse_conv_bn_(module: nn.Module, run: Callable[[], Any], rtol: float = 1e-3,
                  keep: Iterable[str] = ()) -> int:
    """Fold every BatchNorm of ``module`` that reads a convolution's output into that convolution, in place.

    ``module`` must be in eval mode (its BatchNorms use running statistics) and frozen. ``run`` calls it on a
    small input (see :func:`trace_conv_bn_pairs`). Each folded BatchNorm becomes ``nn.Identity`` (the attribute
    names stay, so ``getattr(block, block.norm1_name)`` still works) and its convolution gains a bias; the new
    parameters keep the convolution's ``requires_grad``. The state dict changes accordingly (BatchNorm entries
    go, ``<conv>.bias`` comes); ``module.load_state_dict`` still accepts the unfused layout, folding it on load.
    Computed in float64, stored in the convolution's dtype.

    Args:
        keep: names (relative to ``module``) of modules that must stay as they are, e.g. those a recorder
            hooks into: a pair whose convolution or BatchNorm is named here, or owns a named parameter
            (``<conv>.weight``), is not folded.

    Returns:
        int: the number of BatchNorms folded.

    Raises:
        RuntimeError: if ``module`` is in training mode, or the fused module's outputs on the traced input differ
            from the original's beyond ``rtol`` (relative to each output's largest magnitude).
        FloatingPointError: if the original's outputs on the traced input are not finite.
    """
    if any(m.training for m in module.modules() if isinstance(m, _BatchNorm)):
        raise RuntimeError('fuse_conv_bn_: the module\'s BatchNorms are in training mode (batch statistics), so '
                           'they cannot be folded into the convolutions; call .eval() first.')
    pairs, before = trace_conv_bn_pairs(module, run)
    if not all(torch.isfinite(t).all() for t in _tensors(before)):
        raise FloatingPointError(f'fuse_conv_bn_: the {type(module).__name__}\'s outputs on the traced input are not '
                                 f'finite before any folding: its weights hold a NaN/Inf or its activations '
                                 f'overflow, so the fused outputs cannot be checked.')
    kept = {name.rpartition('.')[0] for name in keep} | set(keep)  # a parameter's name keeps its module
    pairs = [(c, b) for c, b in pairs if c not in kept and b not in kept]
    named = dict(module.named_modules())
    folded = []
    for conv_name, bn_name in pairs:
        conv, bn = named[conv_name], named[bn_name]
        weight, bias = _fold(conv.weight, conv.bias, bn.weight if bn.affine else None,
                             bn.bias if bn.affine else None, bn.running_mean, bn.running_var, bn.eps)
        grad = conv.weight.requires_grad
        conv.weight = nn.Parameter(weight.to(conv.weight), requires_grad=grad)
        conv.bias = nn.Parameter(bias.to(conv.weight), requires_grad=grad)
        parent, _, child = bn_name.rpartition('.')
        setattr(named[parent] if parent else module, child, nn.Identity())
        folded.append((conv_name, bn_name, bn.eps))
    after = run()
    for i, (a, b) in enumerate(zip(_tensors(before), _tensors(after))):
        if not torch.allclose(a, b, rtol=0., atol=rtol * float(a.abs().max().clamp_min(1e-12))):
            raise RuntimeError(
                f'fuse_conv_bn_: output {i} of the fused {type(module).__name__} differs from the original '
                f'(max abs diff {float((a - b).abs().max()):.3g}): some convolution\'s output is also read '
                f'without its BatchNorm. Turn the fusion off for this model (teacher_fuse_conv_bn=False).')
    if folded:
        module._register_load_state_dict_pre_hook(functools.partial(_fold_unfused_entries, folded))
    return len(pairs)
