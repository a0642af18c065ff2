"""Mixed precision on the CPU, which mmengine 0.10.7's ``AmpOptimWrapper`` refuses."""
import functools
from contextlib import contextmanager
from typing import Callable, Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmkd.registry import OPTIM_WRAPPERS


def _has_bf16(args) -> bool:
    return any(isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 for a in args)


def _to_float(args) -> tuple:
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def _float_inputs(forward: Callable) -> Callable:
    """Wrap an mmcv ``autograd.Function.forward``: when a tensor argument is bfloat16, every floating tensor
    argument arrives as float32 and a floating output goes back to bfloat16 (the caller's type)."""
    if getattr(forward, '_mmkd_float_inputs', False):
        return forward

    @functools.wraps(forward)
    def wrapped(ctx, *args, **kwargs):
        if not _has_bf16(args):
            return forward(ctx, *args, **kwargs)
        out = forward(ctx, *_to_float(args), **kwargs)
        return out.to(torch.bfloat16) if isinstance(out, torch.Tensor) and out.is_floating_point() else out

    wrapped._mmkd_float_inputs = True
    return wrapped


def mmcv_ops_accept_bfloat16() -> None:
    """Let mmcv's ``nms`` and ``roi_align`` take bfloat16 inputs on the CPU (idempotent).

    mmcv 2.1.0's CPU kernels of these ops dispatch on float32/float64/float16 only, and ``nms`` needs boxes and
    scores of one type; under CPU autocast, convolution outputs (scores, feature maps) are bfloat16 while decoded
    boxes are float32, so Faster R-CNN stops with ``expected scalar type Float but found BFloat16``. With any
    bfloat16 input the ops compute in float32 (a floating output is returned as bfloat16; autograd casts the
    gradients to the inputs' types). Inputs without bfloat16 pass through untouched.
    """
    from mmcv.ops.nms import NMSop
    from mmcv.ops.roi_align import RoIAlignFunction
    for function in (NMSop, RoIAlignFunction):
        function.forward = staticmethod(_float_inputs(function.forward))


def _float_feats(module: nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook of an mmdet RoI extractor: bfloat16 feature maps become float32.

    mmdet's extractors cast the RoIs to the feature maps' type (``rois.type_as(feats[0])``); bfloat16 keeps 8
    significant bits, which would round box coordinates by up to 2 px at 800 px. With float32 maps the RoIs and
    the pooled features stay float32 (the box head's next linear layer autocasts them to bfloat16).
    """
    if args and isinstance(args[0], (tuple, list)) and _has_bf16(args[0]):
        return (type(args[0])(_to_float(args[0])), *args[1:]), kwargs
    return None


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast('cpu', dtype=bfloat16)``: what ``tools/train.py
    --amp`` uses on a machine without CUDA.

    mmengine's ``AmpOptimWrapper`` asserts that a GPU (or NPU, MLU, MUSA) is present, although ``torch.autocast``
    supports the CPU with bfloat16 (float16 autocast is not offered there). bfloat16 has float32's exponent range,
    so gradients cannot underflow the way float16 ones do and no loss scaling is applied: ``backward`` and
    ``step`` are ``OptimWrapper``'s. Parameters, gradients and optimizer state stay float32; only the operations
    autocast lists (convolutions, linear layers, matrix products) compute in bfloat16. mmcv's ``nms`` and
    ``roi_align``, which have no bfloat16 CPU kernel, run in float32 (:func:`mmcv_ops_accept_bfloat16`), and so
    do mmdet's RoI extractors, which would otherwise round the RoIs to bfloat16 (:func:`_float_feats`).

    Args:
        dtype: the autocast type; only ``'bfloat16'`` (or ``torch.bfloat16``) is accepted.
        loss_scale: accepted for config compatibility with ``AmpOptimWrapper`` (``tools/train.py --amp`` sets
            ``'dynamic'``) and ignored: bfloat16 needs no loss scaling.
        kwargs: ``OptimWrapper``'s (``optimizer``, ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', loss_scale: Union[str, float, dict] = 'dynamic',
                 **kwargs) -> None:
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'CPUAmpOptimWrapper: CPU autocast supports bfloat16 only, got dtype={dtype!r}. Use '
                             "dtype='bfloat16' (or drop --amp, or train on a GPU for float16).")
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16
        mmcv_ops_accept_bfloat16()

    @contextmanager
    def optim_context(self, model: nn.Module):
        """``OptimWrapper.optim_context`` (gradient accumulation) inside a CPU bfloat16 autocast region."""
        self._float_roi_extractors(model)
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield

    @staticmethod
    def _float_roi_extractors(model: nn.Module) -> None:
        """Give every mmdet RoI extractor of ``model`` (student and teacher) the :func:`_float_feats` pre-hook,
        once."""
        from mmdet.models.roi_heads.roi_extractors import BaseRoIExtractor
        for module in model.modules():
            if isinstance(module, BaseRoIExtractor) and not getattr(module, '_mmkd_float_feats', False):
                module.register_forward_pre_hook(_float_feats, with_kwargs=True)
                module._mmkd_float_feats = True
