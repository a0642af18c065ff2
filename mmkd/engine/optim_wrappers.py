"""Mixed precision on the CPU, which mmengine 0.10.7's ``AmpOptimWrapper`` refuses."""
import logging
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from torch import nn

from mmkd.compat import has_bf16, to_float, mmcv_ops_accept_bfloat16
from mmkd.registry import OPTIM_WRAPPERS


def _float_feats(module: nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook of an mmdet RoI extractor: bfloat16 feature maps become float32.

    mmdet's extractors cast the RoIs to the feature maps' type (``rois.type_as(feats[0])``); bfloat16 keeps 8
    significant bits, which would round box coordinates by up to 2 px at 800 px. With float32 maps the RoIs and
    the pooled features stay float32 (the box head's next linear layer autocasts them to bfloat16).
    """
    if args and isinstance(args[0], (tuple, list)) and has_bf16(args[0]):
        return (type(args[0])(to_float(args[0])), *args[1:]), kwargs
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
    ``roi_align``, which have no bfloat16 CPU kernel, run in float32 (patch 7 of :mod:`mmkd.compat`), and so do
    mmdet's RoI extractors, which would otherwise round the RoIs to bfloat16 (:func:`_float_feats`).

    Like ``AmpOptimWrapper``'s loss scaler, it skips the update of a step whose gradients are not all finite
    (no optimizer step; the gradients are cleared), counting the skips in :attr:`skipped_steps` and logging each:
    the mixed-precision behaviour mmkd's distillation algorithms rely on to skip a step whose teacher outputs or
    distillation losses overflow (see ``TeacherStudentDistill``). The check reads every gradient once per update
    (one ``isfinite`` reduction per parameter tensor), before gradient clipping.

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
        self.skipped_steps = 0
        mmcv_ops_accept_bfloat16()

    def step(self, **kwargs) -> None:
        """``OptimWrapper.step`` (gradient clipping, optimizer step), skipped when a gradient is not finite, as
        ``GradScaler.step`` skips it."""
        grads = [p.grad for group in self.optimizer.param_groups for p in group['params'] if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            self.skipped_steps += 1
            print_log(f'CPUAmpOptimWrapper: non-finite gradients: this update is skipped, as a loss scaler skips '
                      f'one ({self.skipped_steps} skipped so far).', logger='current', level=logging.WARNING)
            return
        super().step(**kwargs)

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
