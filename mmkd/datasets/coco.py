"""mmdet's ``CocoDataset`` that says where the data goes when it is missing."""
import os.path as osp
from typing import Optional

from mmdet.datasets import CocoDataset as _MMDetCocoDataset

from mmkd.registry import DATASETS


@DATASETS.register_module()
class CocoDataset(_MMDetCocoDataset):
    """mmdet's ``CocoDataset``, failing at build time with a message that names the expected layout.

    Used by mmkd's COCO configs (``type='mmkd.CocoDataset'``); everything else is mmdet's class unchanged.

    Args:
        missing_hint (str, optional): What to tell the user when the data is missing. Defaults to where COCO
            2017 goes and how to try mmkd on the synthetic data instead.
    """

    def __init__(self, *args, missing_hint: Optional[str] = None, **kwargs) -> None:
        self.missing_hint = missing_hint
        super().__init__(*args, **kwargs)

    def full_init(self) -> None:
        if not self._fully_initialized:
            missing = [p for p in (self.ann_file, self.data_prefix.get('img', '')) if p and not osp.exists(p)]
            if missing:
                raise FileNotFoundError(f'Dataset not found: {", ".join(missing)} does not exist. '
                                        + (self.missing_hint or self._coco_hint()))
        super().full_init()

    def _coco_hint(self) -> str:
        return (f'Put (or symlink) COCO 2017 under {self.data_root or "data/coco/"}: '
                f'annotations/instances_train2017.json, annotations/instances_val2017.json, train2017/, val2017/ '
                f'(from cocodataset.org), or point the config elsewhere with --cfg-options '
                f'train_dataloader.dataset.data_root=DIR (and the val/test dataloaders and val_evaluator.ann_file). '
                f'To try mmkd without COCO, run `make demo` (synthetic data) or the configs in configs/demo/.')
