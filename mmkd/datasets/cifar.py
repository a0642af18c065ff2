"""CIFAR-100 (and its synthetic stand-in) from the official python-pickle files, held in memory."""
import os.path as osp
import pickle
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset

from mmkd.registry import DATASETS
from .transforms import build_transforms

CIFAR100_URL = 'https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz'


def _load_pickle(path: str) -> Dict[str, Any]:
    """Load one CIFAR pickle (python 2 or 3 protocol) with ``str`` keys and ``bytes`` values decoded."""
    with open(path, 'rb') as f:
        raw = pickle.load(f, encoding='bytes')
    if not isinstance(raw, dict):
        raise ValueError(f'{path}: expected a pickled dict in the CIFAR python format, got {type(raw).__name__}.')
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def read_cifar_split(path: str) -> Dict[str, np.ndarray]:
    """Read a CIFAR python split file into ``img`` (uint8 ``[N, 32, 32, 3]``, RGB) and ``gt_label`` (int64
    ``[N]``, the ``fine_labels``; CIFAR-10's ``labels`` are accepted too)."""
    d = _load_pickle(path)
    labels = d.get('fine_labels', d.get('labels'))
    if 'data' not in d or labels is None:
        raise ValueError(f"{path}: a CIFAR split file needs 'data' and 'fine_labels' (or 'labels'), "
                         f'found keys {sorted(d)}.')
    data, labels = np.asarray(d['data'], dtype=np.uint8), np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f'{path}: data must be uint8 [N, 3072] with one label per row, got data '
                         f'{data.shape} and {len(labels)} labels.')
    return dict(img=data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), gt_label=labels)


@DATASETS.register_module()
class CIFAR100(BaseDataset):
    """CIFAR-100 (Krizhevsky, 2009) read from ``<data_root>/{train,test,meta}`` or
    ``<data_root>/cifar-100-python/{train,test,meta}``: the official python-pickle format, which
    ``mmkd.datasets.synthetic.generate_cifar_like`` also writes.

    All images live in one uint8 array ``[N, 32, 32, 3]``; each sample is
    ``dict(img=[32, 32, 3] RGB, gt_label=int, sample_idx=i)`` before the pipeline (e.g. ``ClsRandomCrop(32,
    padding=4)``, ``RandomFlip(prob=0.5)``, ``PackClsInputs``). Class names come from ``meta``
    (``fine_label_names``), so the class count follows the files.

    Args:
        data_root: folder holding the files (or their ``cifar-100-python/`` folder).
        split: 'train' or 'test'.
        pipeline: transforms applied to each sample.
        test_mode: defaults to ``split == 'test'``.
        missing_hint: what to tell the user when the files are missing, instead of how to download CIFAR-100
            (e.g. the synthetic configs name the generator command); ``{data_root}`` is replaced by ``data_root``.
        index_range: ``(start, stop)``: only the split's samples ``start <= i < stop`` (e.g. training on the first
            images of the train split and tuning on the ones after them). ``None``: all of them.
        kwargs: the rest of mmengine's ``BaseDataset`` (``indices``, ``lazy_init``, ...).
    """

    def __init__(self, data_root: str = 'data/cifar100', split: str = 'train',
                 pipeline: Sequence[Union[dict, Any]] = (), test_mode: Optional[bool] = None,
                 metainfo: Optional[dict] = None, missing_hint: Optional[str] = None,
                 index_range: Optional[Sequence[int]] = None, **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"CIFAR100: split must be 'train' or 'test', got {split!r}.")
        if index_range is not None:
            if len(index_range) != 2 or not 0 <= int(index_range[0]) < int(index_range[1]):
                raise ValueError(f'CIFAR100: index_range must be (start, stop) with 0 <= start < stop, got '
                                 f'{index_range!r}.')
            index_range = (int(index_range[0]), int(index_range[1]))
        self.split, self.missing_hint, self.index_range = split, missing_hint, index_range
        kwargs.setdefault('serialize_data', False)  # samples are views into one array; nothing to gain
        super().__init__(data_root=data_root, pipeline=build_transforms(pipeline), metainfo=metainfo,
                         test_mode=split == 'test' if test_mode is None else test_mode, **kwargs)

    def _folder(self) -> str:
        for folder in (self.data_root, osp.join(self.data_root, 'cifar-100-python')):
            if all(osp.isfile(osp.join(folder, f)) for f in (self.split, 'meta')):
                return folder
        missing = f"CIFAR100: no '{self.split}' and 'meta' files under '{self.data_root}' (nor its cifar-100-python/). "
        if self.missing_hint:
            raise FileNotFoundError(missing + self.missing_hint.replace('{data_root}', self.data_root))
        raise FileNotFoundError(
            missing + f'Download {CIFAR100_URL} and extract it so that {self.data_root}/cifar-100-python/'
            '{train,test,meta} exist, or write the synthetic stand-in there with '
            f"`python tools/misc/generate_synthetic_data.py cls --out {self.data_root}` "
            '(mmkd.datasets.synthetic.generate_cifar_like).')

    def load_data_list(self) -> List[dict]:
        folder = self._folder()
        meta = _load_pickle(osp.join(folder, 'meta'))
        names = meta.get('fine_label_names', meta.get('label_names'))
        if names is None:
            raise ValueError(f"{osp.join(folder, 'meta')}: expected 'fine_label_names', found keys {sorted(meta)}.")
        self._metainfo.setdefault('classes', tuple(n.decode() if isinstance(n, bytes) else n for n in names))
        split = read_cifar_split(osp.join(folder, self.split))
        num_classes = len(self._metainfo['classes'])
        if len(split['gt_label']) and not 0 <= split['gt_label'].min() <= split['gt_label'].max() < num_classes:
            raise ValueError(f'{osp.join(folder, self.split)}: labels must lie in [0, {num_classes}) (the meta '
                             f"file names {num_classes} classes), got [{split['gt_label'].min()}, "
                             f"{split['gt_label'].max()}].")
        start, stop = self.index_range or (0, len(split['gt_label']))
        if stop > len(split['gt_label']):
            raise ValueError(f'CIFAR100: index_range {self.index_range} reaches past the '
                             f"{len(split['gt_label'])} samples of {osp.join(folder, self.split)}: generate more "
                             f'images or lower the range.')
        return [dict(img=split['img'][i], gt_label=int(split['gt_label'][i]), sample_idx=i) for i in range(start, stop)]
