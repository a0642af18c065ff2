"""mmdet's ``CocoDataset`` that says where the data goes when it is missing, and which image cannot be read."""
import os.path as osp
from typing import List, Optional

from mmdet.datasets import CocoDataset as _MMDetCocoDataset

from mmkd.registry import DATASETS
from .image_files import CheckedImageFiles


@DATASETS.register_module()
class CocoDataset(CheckedImageFiles, _MMDetCocoDataset):
    """mmdet's ``CocoDataset``, failing at build time with a message that names the expected layout, and on an
    image file that cannot be read (missing, empty, truncated, not an image) with its path, its entry in the
    annotation file and the fix (:class:`~mmkd.datasets.image_files.CheckedImageFiles`: missing and empty files
    at build, the others when the image is read).

    Used by mmkd's COCO and demo configs (``type='mmkd.CocoDataset'``); everything else is mmdet's class unchanged.

    Args:
        missing_hint (str, optional): What to tell the user when the data is missing (also added to the fix for
            an unreadable image). Defaults to where COCO 2017 goes and how to try mmkd on the synthetic data
            instead.
        check_image_files (bool): Check at build that every image file exists and is not empty (default True).
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

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        for i, info in enumerate(data_list):  # mmdet lists the images in the order of the file's `images`
            info['ann_index'] = i
        return data_list

    def image_source(self, info: dict, idx: Optional[int] = None) -> str:
        where = f'image id {info.get("img_id")}'
        if 'ann_index' in info:
            where = f'entry {info["ann_index"]} (0-based) of "images" in {self.ann_file} ({where})'
        return f'{where}; sample {idx} of the dataset' if idx is not None else where

    def image_fix(self) -> str:
        fix = ('Restore the file (copy or extract it again from the original data), or remove the image and its '
               'annotations from the annotation file.')
        return f'{fix} {self.missing_hint}' if self.missing_hint else fix

    def _coco_hint(self) -> str:
        return (f'Put (or symlink) COCO 2017 under {self.data_root or "data/coco/"}: '
                f'annotations/instances_train2017.json, annotations/instances_val2017.json, train2017/, val2017/ '
                f'(from cocodataset.org), or point the config elsewhere with --cfg-options '
                f'train_dataloader.dataset.data_root=DIR (and the val/test dataloaders and val_evaluator.ann_file). '
                f'To try mmkd without COCO, run `make demo` (synthetic data) or the configs in configs/demo/.')
