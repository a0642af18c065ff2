"""ImageNet-style class folders and CUB-200-2011's index files, with the standard 224px pipelines."""
import cv2
import numpy as np
import pytest
import torch

import mmkd  # noqa: F401
from mmkd.registry import DATASETS

TRAIN = [dict(type='LoadImageFromFile'), dict(type='ClsRandomResizedCrop', scale=24),
         dict(type='RandomFlip', prob=0.5), dict(type='PackClsInputs')]
TEST = [dict(type='LoadImageFromFile'), dict(type='ClsResizeEdge', scale=28), dict(type='ClsCenterCrop', crop_size=24),
        dict(type='PackClsInputs')]


def write_img(path, h=30, w=40, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def test_imagenet_folders(tmp_path):
    for split, n in (('train', 2), ('val', 1)):
        for cls in ('n02', 'n01'):
            for i in range(n):
                write_img(tmp_path / split / cls / f'{i}.JPEG')
    (tmp_path / 'train' / 'n01' / 'notes.txt').write_text('not an image')
    train = DATASETS.build(dict(type='ImageNet', data_root=str(tmp_path), split='train', pipeline=TRAIN))
    val = DATASETS.build(dict(type='ImageNet', data_root=str(tmp_path), split='val', pipeline=TEST))
    assert train.metainfo['classes'] == ('n01', 'n02') and len(train) == 4 and not train.test_mode
    assert [train.get_data_info(i)['gt_label'] for i in range(4)] == [0, 0, 1, 1]
    assert len(val) == 2 and val.test_mode
    for ds in (train, val):
        item = ds[1]
        assert item['inputs'].shape == (3, 24, 24) and item['inputs'].dtype == torch.uint8
        assert item['data_samples'].img_path.endswith('.JPEG')


def test_cub200_split_files(tmp_path):
    root = tmp_path / 'CUB_200_2011'
    rows = [(1, '001.A/a.jpg', 1, 1), (2, '001.A/b.jpg', 1, 0), (3, '002.B/c.jpg', 2, 1), (4, '002.B/d.jpg', 2, 0)]
    for _, rel, _, _ in rows:
        write_img(root / 'images' / rel, 20, 50)
    (root / 'images.txt').write_text(''.join(f'{i} {rel}\n' for i, rel, _, _ in rows))
    (root / 'image_class_labels.txt').write_text(''.join(f'{i} {c}\n' for i, _, c, _ in rows))
    (root / 'train_test_split.txt').write_text(''.join(f'{i} {t}\n' for i, _, _, t in rows))
    (root / 'classes.txt').write_text('1 001.A\n2 002.B\n')
    train = DATASETS.build(dict(type='CUB200', data_root=str(root), split='train', pipeline=TRAIN))
    test = DATASETS.build(dict(type='CUB200', data_root=str(root), split='test', pipeline=TEST))
    assert [(d['img_path'].split('/')[-1], d['gt_label']) for d in (train.get_data_info(i) for i in range(2))] == \
        [('a.jpg', 0), ('c.jpg', 1)]
    assert [test.get_data_info(i)['gt_label'] for i in range(2)] == [0, 1] and test.test_mode
    assert train.metainfo['classes'] == ('001.A', '002.B')
    assert test[0]['inputs'].shape == (3, 24, 24)


def test_missing_folders_say_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'train/<wnid>/\*\.JPEG'):
        DATASETS.build(dict(type='ImageNet', data_root=str(tmp_path / 'imagenet')))
    with pytest.raises(FileNotFoundError, match='images.txt, train_test_split.txt, image_class_labels.txt'):
        DATASETS.build(dict(type='CUB200', data_root=str(tmp_path / 'CUB_200_2011')))
    with pytest.raises(ValueError, match='split must be one of'):
        DATASETS.build(dict(type='CUB200', data_root=str(tmp_path), split='val'))


def test_transforms_geometry():
    from mmkd.datasets.transforms import ClsCenterCrop, ClsRandomResizedCrop, ClsResizeEdge
    img = np.arange(30 * 40 * 3, dtype=np.uint8).reshape(30, 40, 3)
    assert ClsResizeEdge(60)(dict(img=img))['img'].shape == (60, 80, 3)
    assert ClsResizeEdge(20, edge='long')(dict(img=img))['img'].shape == (15, 20, 3)
    np.testing.assert_array_equal(ClsCenterCrop(10)(dict(img=img))['img'], img[10:20, 15:25])
    assert ClsRandomResizedCrop((12, 16))(dict(img=img))['img'].shape == (12, 16, 3)
    with pytest.raises(ValueError, match='smaller than the crop'):
        ClsCenterCrop(50)(dict(img=img))
