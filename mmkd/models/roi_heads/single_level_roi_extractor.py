"""mmdet's ``SingleRoIExtractor`` whose ``roi_layer`` may also be an operator of :mod:`mmkd.ops`."""
from typing import List

from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor as MMDetSingleRoIExtractor
from torch import nn

from mmkd import ops
from mmkd.registry import MODELS


@MODELS.register_module()
class SingleRoIExtractor(MMDetSingleRoIExtractor):
    """mmdet's ``SingleRoIExtractor`` (every argument and result the same); ``roi_layer=dict(type='mmkd.RoIAlign',
    ...)`` takes :class:`mmkd.ops.RoIAlign` (mmcv's RoIAlign with a fast CPU path), any other type an
    ``mmcv.ops`` layer as in mmdet.

    In a detector's config (whose dicts are in the ``mmdet`` scope, from which mmengine reaches mmkd's models only
    by their import path): ``bbox_roi_extractor=dict(type='mmkd.models.roi_heads.SingleRoIExtractor',
    roi_layer=dict(type='mmkd.RoIAlign', output_size=7, sampling_ratio=0), ...)``.
    """

    def build_roi_layers(self, layer_cfg: dict, featmap_strides: List[int]) -> nn.ModuleList:
        cfg = dict(layer_cfg)
        layer_type = cfg['type']
        if isinstance(layer_type, str) and layer_type.startswith('mmkd.'):
            layer_cls = getattr(ops, layer_type[len('mmkd.'):], None)
            if not (isinstance(layer_cls, type) and issubclass(layer_cls, nn.Module)):
                layers = [n for n in ops.__all__ if isinstance(getattr(ops, n), type)]
                raise ValueError(f'roi_layer type {layer_type!r} is not a layer of mmkd.ops (it has '
                                 f'{", ".join(layers)}); name an mmcv.ops layer without "mmkd."')
            cfg['type'] = layer_cls
        return super().build_roi_layers(cfg, featmap_strides)
