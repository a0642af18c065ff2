"""Unreadable image files (missing, empty, truncated, not an image) stop a run with the file's path, where the
dataset lists it and the fix: through the real dataset classes with the shipped pipelines (detection: the demo
config's ``mmkd.CocoDataset``; classification: ImageNet and CUB-200 with their configs' pipelines)."""
import copy
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader

import mmkd  # noqa: F401
from mmkd.datasets import UnreadableImageError, image_file_problem
from mmkd.datasets.synthetic import generate_coco_detection
from mmkd.registry import DATASETS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(autouse=True)
def mmkd_scope():
    with DefaultScope.overwrite_default_scope('mmkd'):
        yield


def jpeg_bytes(seed: int = 0, size: int = 48) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return cv2.imencode('.jpg', img)[1].tobytes()


#: how each fault is written over a valid image file, and what the error says about it
FAULTS = dict(
    empty=(lambda data: b'', 'it is empty (0 bytes)'),
    truncated_png=(lambda data: data[:len(data) // 2], 'it is a truncated PNG'),
    truncated_jpeg=(lambda data: jpeg_bytes()[:len(jpeg_bytes()) * 2 // 3], 'it is a truncated JPEG'),
    not_an_image=(lambda data: b'<html><body>404 Not Found</body></html>\n',
                  "it is not an image OpenCV can decode (its first bytes: b'<html><body>404 ')"),
    jpeg_header_only=(lambda data: jpeg_bytes()[:200], 'it is a truncated JPEG'),
)


def test_image_file_problem_tells_each_fault(tmp_path):
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'good.jpg').write_bytes(jpeg_bytes())
    assert image_file_problem(str(good), decode=True) is None
    assert image_file_problem(str(tmp_path / 'good.jpg'), decode=True) is None
    assert image_file_problem(str(tmp_path / 'missing.png')) == 'it does not exist'
    assert image_file_problem(str(tmp_path)) == 'it is a folder, not a file'
    for name, (corrupt, said) in FAULTS.items():
        path = tmp_path / f'{name}.png'
        path.write_bytes(corrupt(good.read_bytes()))
        assert said in image_file_problem(str(path), decode=True), name
    # OpenCV decodes a truncated JPEG without an error (grey rows): only the byte check finds it
    path = tmp_path / 'truncated.jpg'
    path.write_bytes(FAULTS['truncated_jpeg'][0](b''))
    assert cv2.imread(str(path)) is not None and 'truncated JPEG' in image_file_problem(str(path))
    assert image_file_problem('s3://bucket/image.jpg') is None  # remote files are the backend's business
    # formats whose header gives the file size
    img = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    for ext, name in (('.bmp', 'BMP'), ('.webp', 'WEBP')):
        data = cv2.imencode(ext, img)[1].tobytes()
        path = tmp_path / f'whole{ext}'
        path.write_bytes(data)
        assert image_file_problem(str(path), decode=True) is None
        path.write_bytes(data[:len(data) - 10])
        assert f'it is a truncated {name} ({len(data) - 10} bytes; its header says {len(data)})' \
            == image_file_problem(str(path)), ext


# ------------------------------------------------------------------------------------------------ detection
@pytest.fixture(scope='module')
def coco_data(tmp_path_factory):
    return generate_coco_detection(tmp_path_factory.mktemp('coco') / 'data', num_train=8, num_val=3, img_size=64,
                                   num_classes=4, min_object_size=16)


def demo_dataset_cfg(data_root: str, split: str) -> dict:
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/_base_/faster_rcnn_r50_synthetic.py'))
    ds = copy.deepcopy(cfg[f'{split}_dataloader'].dataset.to_dict())
    ds['data_root'] = data_root + '/'
    return ds


def corrupt_entry(data_root: str, split: str, entry: int, fault: str) -> str:
    """Write ``fault`` over the image at ``entry`` of the annotation file's ``images``; return its path."""
    with open(osp.join(data_root, 'annotations', f'instances_{split}.json')) as f:
        image = json.load(f)['images'][entry]
    path = osp.join(data_root, 'images', split, image['file_name'])
    if fault == 'missing':
        os.remove(path)
    else:
        with open(path, 'rb') as f:
            data = f.read()
        with open(path, 'wb') as f:
            f.write(FAULTS[fault][0](data))
    return path, image['id']


@pytest.fixture
def coco_copy(coco_data, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(coco_data['data_root'], root)
    return root


@pytest.mark.parametrize('split', ['train', 'val'])
@pytest.mark.parametrize('fault', ['missing', 'empty'])
def test_missing_or_empty_detection_images_stop_the_build(coco_copy, split, fault):
    path, img_id = corrupt_entry(coco_copy, split, 1, fault)
    with pytest.raises(UnreadableImageError) as err:
        DATASETS.build(demo_dataset_cfg(coco_copy, split))
    msg = str(err.value)
    ann_file = osp.join(coco_copy, 'annotations', f'instances_{split}.json')
    assert '1 of the ' in msg and path in msg and ('missing' if fault == 'missing' else 'empty (0 bytes)') in msg
    assert f'entry 1 (0-based) of "images" in {ann_file} (image id {img_id})' in msg
    assert 'Restore the file' in msg and 'generate_synthetic_data.py det' in msg  # the config's own hint
    assert 'check_image_files=False' in msg
    # opted out: the build passes and the read stops with the same facts
    dataset = DATASETS.build(dict(demo_dataset_cfg(coco_copy, split), check_image_files=False))
    idx = next(i for i in range(len(dataset)) if dataset.get_data_info(i)['img_path'] == path)
    with pytest.raises(UnreadableImageError, match='entry 1 \\(0-based\\)'):
        dataset[idx]


@pytest.mark.parametrize('fault', ['truncated_png', 'truncated_jpeg', 'not_an_image', 'jpeg_header_only'])
def test_unreadable_detection_image_stops_at_the_step_that_reads_it(coco_copy, fault):
    path, img_id = corrupt_entry(coco_copy, 'train', 2, fault)
    dataset = DATASETS.build(demo_dataset_cfg(coco_copy, 'train'))
    idx = next(i for i in range(len(dataset)) if dataset.get_data_info(i)['img_path'] == path)
    for i in range(len(dataset)):  # every other image still loads
        if i != idx:
            assert dataset[i]['inputs'].shape[0] == 3
    with pytest.raises(UnreadableImageError) as err:
        dataset[idx]
    msg = str(err.value)
    assert f'cannot read image {path}: {FAULTS[fault][1]}' in msg
    assert 'entry 2 (0-based) of "images" in' in msg and f'image id {img_id}' in msg and f'sample {idx}' in msg
    assert 'Restore the file' in msg


def test_the_error_survives_the_dataloader_workers(coco_copy):
    path, _ = corrupt_entry(coco_copy, 'train', 0, 'truncated_jpeg')
    dataset = DATASETS.build(demo_dataset_cfg(coco_copy, 'train'))
    with pytest.raises(UnreadableImageError) as err:
        for _ in DataLoader(dataset, batch_size=4, num_workers=1, collate_fn=pseudo_collate):
            pass
    assert path in str(err.value) and 'truncated JPEG' in str(err.value)


# ------------------------------------------------------------------------------------------- classification
def cls_pipeline(name: str, split: str = 'train') -> list:
    cfg = Config.fromfile(osp.join(REPO, f'configs/cls/_base_/datasets/{name}.py'))
    return copy.deepcopy(cfg[f'{split}_pipeline'])


def write_image(path: str, seed: int) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(jpeg_bytes(seed, size=40))


@pytest.fixture
def imagenet_root(tmp_path):
    for c, name in enumerate(('n01', 'n02')):
        for i in range(3):
            write_image(str(tmp_path / 'imagenet' / 'train' / name / f'{name}_{i}.JPEG'), 10 * c + i)
    return str(tmp_path / 'imagenet')


def test_imagenet_unreadable_images(imagenet_root):
    pipeline = cls_pipeline('imagenet')
    bad = osp.join(imagenet_root, 'train', 'n02', 'n02_1.JPEG')
    with open(bad, 'wb'):
        pass
    with pytest.raises(UnreadableImageError, match=r"n02_1\.JPEG \(empty \(0 bytes\); sample 4 of the train split "
                                                   r"\(class 'n02'"):
        DATASETS.build(dict(type='ImageNet', data_root=imagenet_root, split='train', pipeline=pipeline))
    with open(bad, 'wb') as f:
        f.write(jpeg_bytes(1, size=40)[:300])  # truncated
    dataset = DATASETS.build(dict(type='ImageNet', data_root=imagenet_root, split='train', pipeline=pipeline))
    assert dataset[0]['inputs'].shape == (3, 224, 224)
    with pytest.raises(UnreadableImageError, match=rf"cannot read image {bad}: it is a truncated JPEG.*sample 4.*"
                                                   r"Copy the file again"):
        dataset[4]
    os.remove(bad)  # gone after the build: the read names it
    with pytest.raises(UnreadableImageError, match=rf'cannot read image {bad}: it does not exist'):
        dataset[4]


@pytest.fixture
def cub_root(tmp_path):
    root = tmp_path / 'CUB_200_2011'
    rows = [(i, f'{1 + i % 2:03d}.bird/img_{i}.jpg') for i in range(1, 6)]
    for i, rel in rows:
        write_image(str(root / 'images' / rel), i)
    (root / 'images.txt').write_text(''.join(f'{i} {rel}\n' for i, rel in rows))
    (root / 'train_test_split.txt').write_text(''.join(f'{i} 1\n' for i, _ in rows))
    (root / 'image_class_labels.txt').write_text(''.join(f'{i} {1 + i % 2}\n' for i, _ in rows))
    return str(root)


def test_cub_unreadable_images(cub_root):
    pipeline = cls_pipeline('cub200')
    missing = osp.join(cub_root, 'images', '002.bird', 'img_3.jpg')
    os.remove(missing)
    with pytest.raises(UnreadableImageError, match=rf"{missing} \(missing; image id 3 in {cub_root}/images\.txt "
                                                   r"\(sample 2 of the train split\)\).*CUB_200_2011\.tgz"):
        DATASETS.build(dict(type='CUB200', data_root=cub_root, split='train', pipeline=pipeline))
    with open(missing, 'wb') as f:
        f.write(b'GIF89a' + b'\x00' * 20)  # a GIF header with nothing behind it
    dataset = DATASETS.build(dict(type='CUB200', data_root=cub_root, split='train', pipeline=pipeline))
    assert dataset[0]['inputs'].shape == (3, 224, 224)
    with pytest.raises(UnreadableImageError, match=rf'cannot read image {missing}: it is a GIF that OpenCV cannot '
                                                   r'decode\. It is image id 3'):
        dataset[2]
