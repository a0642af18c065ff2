"""Light classification transforms (numpy HWC images) and the packer that turns a sample into model inputs.

Names carry a ``Cls`` prefix so they never shadow mmdet's detection transforms of the same name in the ``mmkd``
scope. Flipping uses the in-scope ``RandomFlip`` (mmdet's, which flips the image only when no boxes are present).
"""
import math
from typing import Callable, List, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mmkd.registry import TRANSFORMS


def _pair(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """``int`` or ``(h, w)`` -> ``(h, w)`` of positive ints, else a ValueError naming the transform."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f'{name}: sizes must be positive, got {size}.')
    return int(h), int(w)


@TRANSFORMS.register_module()
class ClsRandomCrop(BaseTransform):
    """Zero-pad ``padding`` pixels on every side, then crop a random ``crop_size`` window (CIFAR: 32, padding 4).

    Required key ``img`` (``[H, W, C]``); modifies ``img`` and ``img_shape``.
    """

    def __init__(self, crop_size: Union[int, Sequence[int]], padding: int = 0) -> None:
        self.crop_size = _pair(crop_size, 'ClsRandomCrop')
        if padding < 0:
            raise ValueError(f'ClsRandomCrop: padding must be >= 0, got {padding}.')
        self.padding = padding

    def transform(self, results: dict) -> dict:
        img = results['img']
        if self.padding:
            p = self.padding
            img = np.pad(img, ((p, p), (p, p)) + ((0, 0), ) * (img.ndim - 2))
        (h, w), (ch, cw) = img.shape[:2], self.crop_size
        if h < ch or w < cw:
            raise ValueError(f'ClsRandomCrop: image {h}x{w} (after padding) is smaller than the crop {ch}x{cw}; '
                             'resize first (e.g. ClsResizeEdge) or add padding.')
        y, x = np.random.randint(h - ch + 1), np.random.randint(w - cw + 1)
        results['img'] = img[y:y + ch, x:x + cw]
        results['img_shape'] = (ch, cw)
        return results


@TRANSFORMS.register_module()
class ClsRandomResizedCrop(BaseTransform):
    """Inception-style crop: a random window covering ``crop_ratio_range`` of the area with aspect ratio in
    ``aspect_ratio_range`` (log-uniform), resized to ``scale`` (10 tries, then a centre crop), as torchvision's
    ``RandomResizedCrop``. Required key ``img``; modifies ``img`` and ``img_shape``."""

    def __init__(self, scale: Union[int, Sequence[int]], crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 interpolation: str = 'bilinear') -> None:
        self.scale = _pair(scale, 'ClsRandomResizedCrop')
        if not 0 < crop_ratio_range[0] <= crop_ratio_range[1] <= 1 or not \
                0 < aspect_ratio_range[0] <= aspect_ratio_range[1]:
            raise ValueError('ClsRandomResizedCrop: need 0 < crop_ratio_range[0] <= crop_ratio_range[1] <= 1 and '
                             f'0 < aspect_ratio_range[0] <= [1], got {crop_ratio_range} and {aspect_ratio_range}.')
        self.crop_ratio_range = crop_ratio_range
        self.log_ratio = (math.log(aspect_ratio_range[0]), math.log(aspect_ratio_range[1]))
        self.interpolation = interpolation

    def _window(self, h: int, w: int) -> Tuple[int, int, int, int]:
        for _ in range(10):
            area = h * w * np.random.uniform(*self.crop_ratio_range)
            ratio = math.exp(np.random.uniform(*self.log_ratio))
            cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return np.random.randint(h - ch + 1), np.random.randint(w - cw + 1), ch, cw
        side = min(h, w)
        return (h - side) // 2, (w - side) // 2, side, side

    def transform(self, results: dict) -> dict:
        img = results['img']
        y, x, ch, cw = self._window(*img.shape[:2])
        results['img'] = mmcv.imresize(img[y:y + ch, x:x + cw], self.scale[::-1], interpolation=self.interpolation)
        results['img_shape'] = self.scale
        return results


@TRANSFORMS.register_module()
class ClsResizeEdge(BaseTransform):
    """Resize so that the ``edge`` ('short' or 'long') side equals ``scale``, keeping the aspect ratio
    (torchvision's ``Resize(int)`` for 'short'). Required key ``img``; modifies ``img`` and ``img_shape``."""

    def __init__(self, scale: int, edge: str = 'short', interpolation: str = 'bilinear') -> None:
        if edge not in ('short', 'long') or scale < 1:
            raise ValueError(f"ClsResizeEdge: need edge in ('short', 'long') and scale >= 1, got {edge!r}, {scale}.")
        self.scale, self.edge, self.interpolation = scale, edge, interpolation

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        ref = min(h, w) if self.edge == 'short' else max(h, w)
        size = (max(1, int(round(w * self.scale / ref))), max(1, int(round(h * self.scale / ref))))
        results['img'] = mmcv.imresize(results['img'], size, interpolation=self.interpolation)
        results['img_shape'] = results['img'].shape[:2]
        return results


@TRANSFORMS.register_module()
class ClsCenterCrop(BaseTransform):
    """Crop the central ``crop_size`` window (the image must be at least that large). Required key ``img``."""

    def __init__(self, crop_size: Union[int, Sequence[int]]) -> None:
        self.crop_size = _pair(crop_size, 'ClsCenterCrop')

    def transform(self, results: dict) -> dict:
        (h, w), (ch, cw) = results['img'].shape[:2], self.crop_size
        if h < ch or w < cw:
            raise ValueError(f'ClsCenterCrop: image {h}x{w} is smaller than the crop {ch}x{cw}; resize first.')
        y, x = (h - ch) // 2, (w - cw) // 2
        results['img'] = results['img'][y:y + ch, x:x + cw]
        results['img_shape'] = (ch, cw)
        return results


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack a classification sample: ``img [H, W, C] uint8`` -> ``inputs [C, H, W]`` (uint8 tensor, normalised later
    by the data preprocessor) and a ``BaseDataElement`` with ``gt_label`` (LongTensor ``[1]``) and the ``meta_keys``
    present in the results as metainfo."""

    def __init__(self, meta_keys: Sequence[str] = ('sample_idx', 'img_path', 'ori_shape', 'img_shape',
                                                   'flip')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.as_tensor(results['gt_label'], dtype=torch.long).reshape(1)
        return dict(inputs=inputs, data_samples=sample)


def build_transforms(pipeline: Sequence[Union[dict, Callable]]) -> List[Callable]:
    """Build transform configs from mmkd's registry (which falls back to mmdet's and mmcv's), so a dataset works
    without a default scope; built transforms pass through."""
    return [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
