"""ImageNet and CUB-200-2011 from their standard folder layouts (images are read by the pipeline)."""
import os
import os.path as osp
from typing import Any, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from mmkd.registry import DATASETS
from .image_files import CheckedImageFiles
from .transforms import build_transforms

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


class _SplitDataset(CheckedImageFiles, BaseDataset):
    """A ``BaseDataset`` with a ``split`` in ``splits`` and ``test_mode`` defaulting to ``split != 'train'``, whose
    unreadable image files (missing, empty, truncated, not an image) stop the run with the file's path, where the
    dataset lists it and the fix (:class:`~mmkd.datasets.image_files.CheckedImageFiles`;
    ``check_image_files=False`` skips the check of every file at build)."""

    splits = ('train', 'val')

    def __init__(self, data_root: str, split: str = 'train', pipeline: Sequence[Union[dict, Any]] = (),
                 test_mode: Optional[bool] = None, metainfo: Optional[dict] = None, **kwargs) -> None:
        if split not in self.splits:
            raise ValueError(f'{type(self).__name__}: split must be one of {self.splits}, got {split!r}.')
        self.split = split
        super().__init__(data_root=data_root, pipeline=build_transforms(pipeline), metainfo=metainfo,
                         test_mode=split != 'train' if test_mode is None else test_mode, **kwargs)


@DATASETS.register_module()
class ImageNet(_SplitDataset):
    """ImageNet-1k (or any class-per-folder set) from ``<data_root>/{train,val}/<class>/<image>``.

    Classes are the sorted sub-folder names of ``<data_root>/train`` (of the split's folder when there is no train
    folder), so labels agree across splits; ``val`` must use the class-folder layout too (e.g. after
    ``valprep.sh``). Each sample is ``dict(img_path, gt_label, sample_idx)``; the pipeline loads the image
    (``LoadImageFromFile``).
    """

    def image_source(self, info: dict, idx: Optional[int] = None) -> str:
        return (f'sample {info.get("sample_idx", idx)} of the {self.split} split (class '
                f'{self._metainfo["classes"][info["gt_label"]]!r}; files are listed per class folder, sorted)')

    def image_fix(self) -> str:
        return ('Copy the file again from the original ImageNet archive, or delete it from its class folder (the '
                'folders are the file list).')

    def load_data_list(self) -> List[dict]:
        folder = osp.join(self.data_root, self.split)
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f"ImageNet: no '{folder}'. Put the ILSVRC-2012 images under {self.data_root}/train/<wnid>/*.JPEG and "
                f'{self.data_root}/val/<wnid>/*.JPEG (val sorted into class folders), or set data_root.')
        class_root = osp.join(self.data_root, 'train') if osp.isdir(osp.join(self.data_root, 'train')) else folder
        classes = sorted(e.name for e in os.scandir(class_root) if e.is_dir())
        if not classes:
            raise FileNotFoundError(f"ImageNet: '{class_root}' has no class sub-folders; expected <class>/<image>.")
        self._metainfo.setdefault('classes', tuple(classes))
        data_list = []
        for label, name in enumerate(classes):
            sub = osp.join(folder, name)
            files = sorted(e.name for e in os.scandir(sub) if e.name.lower().endswith(IMG_EXTENSIONS)) \
                if osp.isdir(sub) else []
            data_list += [dict(img_path=osp.join(sub, f), gt_label=label) for f in files]
        if not data_list:
            raise FileNotFoundError(f"ImageNet: no images ({', '.join(IMG_EXTENSIONS)}) under '{folder}/<class>/'.")
        for i, info in enumerate(data_list):
            info['sample_idx'] = i
        return data_list


@DATASETS.register_module()
class CUB200(_SplitDataset):
    """CUB-200-2011 (Wah et al., 2011) with its official train/test split, from ``<data_root>`` =
    ``CUB_200_2011/`` holding ``images.txt`` (``<id> <relative path>``), ``train_test_split.txt``
    (``<id> <1 train | 0 test>``), ``image_class_labels.txt`` (``<id> <class 1..200>``), optional ``classes.txt``
    and ``images/``. ``split`` is 'train' or 'test'; labels are 0-based.
    """

    splits = ('train', 'test')
    required = ('images.txt', 'train_test_split.txt', 'image_class_labels.txt')

    def image_source(self, info: dict, idx: Optional[int] = None) -> str:
        return (f'image id {info.get("cub_id")} in {osp.join(self.data_root, "images.txt")} (sample '
                f'{info.get("sample_idx", idx)} of the {self.split} split)')

    def image_fix(self) -> str:
        return ('Extract the file again from CUB_200_2011.tgz, or remove its id from images.txt, '
                'train_test_split.txt and image_class_labels.txt.')

    def _read(self, name: str) -> dict:
        with open(osp.join(self.data_root, name)) as f:
            rows = [line.split(maxsplit=1) for line in f if line.strip()]
        return {int(k): v.strip() for k, v in rows}

    def load_data_list(self) -> List[dict]:
        missing = [f for f in self.required + ('images', ) if not osp.exists(osp.join(self.data_root, f))]
        if missing:
            raise FileNotFoundError(
                f"CUB200: '{self.data_root}' lacks {missing}. Extract CUB_200_2011.tgz "
                '(https://www.vision.caltech.edu/datasets/cub_200_2011/) so that data/CUB_200_2011/ holds '
                'images.txt, train_test_split.txt, image_class_labels.txt and images/, or set data_root.')
        paths, is_train, labels = (self._read(f) for f in self.required)
        if osp.isfile(osp.join(self.data_root, 'classes.txt')):
            names = self._read('classes.txt')
            self._metainfo.setdefault('classes', tuple(names[k] for k in sorted(names)))
        want = '1' if self.split == 'train' else '0'
        ids = [i for i in sorted(paths) if is_train.get(i) == want]
        if any(i not in labels for i in ids):
            raise ValueError(f'CUB200: image_class_labels.txt lacks labels for some images of the {self.split} '
                             'split; the three index files must list the same image ids.')
        return [dict(img_path=osp.join(self.data_root, 'images', paths[i]), gt_label=int(labels[i]) - 1,
                     sample_idx=n, cub_id=i) for n, i in enumerate(ids)]
