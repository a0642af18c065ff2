"""mmdet's ``CocoDataset`` that says where the data goes when it is missing."""
import os.path as osp

from mmdet.datasets import CocoDataset as _MMDetCocoDataset

from mmkd.registry import DATASETS


@DATASETS.register_module()
class CocoDataset(_MMDetCocoDataset):
    """mmdet's ``CocoDataset``, failing at build time with a message that names the expected layout.

    Used by mmkd's COCO configs (``type='mmkd.CocoDataset'``); everything else is mmdet's class unchanged.
    """

    def full_init(self) -> None:
        if not self._fully_initialized:
            missing = [p for p in (self.ann_file, self.data_prefix.get('img', '')) if p and not osp.exists(p)]
            if missing:
                raise FileNotFoundError(
                    f'COCO data not found: {", ".join(missing)} does not exist. Put (or symlink) COCO 2017 under '
                    f'{self.data_root or "data/coco/"}: annotations/instances_train2017.json, '
                    f'annotations/instances_val2017.json, train2017/, val2017/ (from cocodataset.org); or point '
                    f'the config elsewhere with --cfg-options train_dataloader.dataset.data_root=DIR ... . To try '
                    f'mmkd without COCO, run `make demo` (synthetic data) or the configs in configs/demo/.')
        super().full_init()
