import importlib.util
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmkd.datasets.synthetic import (DET_CLASSES, SHAPE_CLASSES, generate_cifar_like, generate_coco_detection,
                                     render_classification_image, sample_rng)

TOOL = Path(__file__).parents[2] / 'tools' / 'misc' / 'generate_synthetic_data.py'


def _det(out, **kw):
    return generate_coco_detection(out, **{**dict(num_train=12, num_val=4, img_size=64, seed=0), **kw})


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob('*')) if f.is_file()}


def _pixels(img_dir: str) -> list[np.ndarray]:
    return [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in sorted(Path(img_dir).iterdir())]


def test_detection_deterministic_and_seeded(tmp_path):
    a, b, c = _det(tmp_path / 'a'), _det(tmp_path / 'b'), _det(tmp_path / 'c', seed=1)
    fa, fb = _files(tmp_path / 'a'), _files(tmp_path / 'b')
    assert fa == fb and len(fa) == 12 + 4 + 2 + 1
    assert all(np.array_equal(x, y) for x, y in zip(_pixels(a['train_img_dir']), _pixels(b['train_img_dir'])))
    fc = _files(tmp_path / 'c')
    assert fc['annotations/instances_train.json'] != fa['annotations/instances_train.json']
    assert not any(np.array_equal(x, y) for x, y in zip(_pixels(a['val_img_dir']), _pixels(c['val_img_dir'])))
    # per-image seeding: a prefix does not depend on the count, nor on the number of worker processes
    d = _det(tmp_path / 'd', num_train=5, num_val=1, num_workers=2)
    assert _files(Path(d['train_img_dir'])) == {k: v for k, v in _files(Path(a['train_img_dir'])).items()
                                                if int(k[:6]) < 5}
    small = json.loads(Path(d['train_ann_file']).read_text())['annotations']
    big = json.loads(Path(a['train_ann_file']).read_text())['annotations']
    assert small == big[:len(small)] and big[len(small)]['image_id'] == 6


def test_coco_validity(tmp_path):
    from mmdet.datasets import CocoDataset
    from pycocotools.coco import COCO
    paths = generate_coco_detection(tmp_path, num_train=20, num_val=2, img_size=96, seed=3)
    coco = COCO(paths['train_ann_file'])
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(DET_CLASSES)
    assert len(coco.getImgIds()) == 20
    for img in coco.loadImgs(coco.getImgIds()):
        pixels = cv2.imread(str(Path(paths['train_img_dir']) / img['file_name']))
        assert pixels.shape == (img['height'], img['width'], 3) == (96, 96, 3)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 30 and len({a['id'] for a in anns}) == len(anns)
    assert {a['category_id'] for a in anns} == set(range(1, len(DET_CLASSES) + 1))
    for ann in anns:
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96
        assert ann['iscrowd'] == 0 and 12 <= ann['area'] <= w * h
        # the polygons come from the same visible mask: they touch all four sides of the box (tight box)
        pts = np.concatenate([np.reshape(p, (-1, 2)) for p in ann['segmentation']])
        assert pts.min(0).tolist() == [x, y] and pts.max(0).tolist() == [x + w - 1, y + h - 1]
        assert coco.annToMask(ann).sum() > 0
    # occlusion happens: some boxes overlap within an image
    assert any(a is not b and a['image_id'] == b['image_id'] and _iou(a['bbox'], b['bbox']) > 0
               for a in anns for b in anns)

    ds = CocoDataset(data_root=paths['data_root'], ann_file='annotations/instances_train.json',
                     data_prefix=dict(img='images/train/'), metainfo=dict(classes=DET_CLASSES), pipeline=[])
    labels = [i['bbox_label'] for k in range(len(ds)) for i in ds.get_data_info(k)['instances']]
    assert len(labels) == len(anns) and set(labels) == set(range(len(DET_CLASSES)))


def _iou(a, b):
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0) / (a[2] * a[3] + b[2] * b[3] - max(w, 0) * max(h, 0))


def test_cifar_like_format_and_determinism(tmp_path):
    paths = generate_cifar_like(tmp_path / 'a', num_train=30, num_test=7, seed=0, num_classes=12)
    generate_cifar_like(tmp_path / 'b', num_train=30, num_test=7, seed=0, num_classes=12)
    generate_cifar_like(tmp_path / 'c', num_train=30, num_test=7, seed=5, num_classes=12)
    assert _files(tmp_path / 'a') == _files(tmp_path / 'b') != _files(tmp_path / 'c')
    for split, n in (('train', 30), ('test', 7)):
        with open(paths[f'{split}_file'], 'rb') as f:
            d = pickle.load(f, encoding='bytes')
        assert {b'data', b'fine_labels', b'coarse_labels', b'filenames', b'batch_label'} <= d.keys()
        assert d[b'data'].dtype == np.uint8 and d[b'data'].shape == (n, 3072)
        assert len(d[b'fine_labels']) == len(d[b'filenames']) == n
        assert all(isinstance(y, int) and 0 <= y < 12 for y in d[b'fine_labels'])
        # R plane, G plane, B plane, row-major: the rendered image of sample 0
        img, label = render_classification_image(sample_rng(0, 'cls', split, 0), 12)
        assert np.array_equal(d[b'data'][0].reshape(3, 32, 32).transpose(1, 2, 0), img)
        assert d[b'fine_labels'][0] == label
        assert len(set(d[b'fine_labels'])) >= min(n, 12) // 2 and d[b'data'].std() > 20
    with open(paths['meta_file'], 'rb') as f:
        assert pickle.load(f, encoding='bytes')[b'fine_label_names'] == [c.encode() for c in SHAPE_CLASSES]
    with open(paths['train_file'], 'rb') as f:  # latin1 readers (torchvision, mmpretrain) get str keys
        d = pickle.load(f, encoding='latin1')
    assert d['data'].shape == (30, 3072) and d['filenames'][0].endswith('.png')


def test_manifest_reuse_and_regeneration(tmp_path):
    out = tmp_path / 'det'
    paths = _det(out)
    ann = Path(paths['train_ann_file'])
    stamp = (ann.stat().st_ino, ann.stat().st_mtime_ns)
    assert _det(out) == paths
    assert (ann.stat().st_ino, ann.stat().st_mtime_ns) == stamp
    _det(out, num_val=3)
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['args']['num_val'] == 3 and len(json.loads(Path(paths['val_ann_file']).read_text())['images']) == 3
    assert len(list(Path(paths['val_img_dir']).iterdir())) == 3
    stamp = ann.stat().st_ino
    _det(out, num_val=3, force=True)
    assert ann.stat().st_ino != stamp
    assert [p.name for p in tmp_path.iterdir()] == ['det']  # no temp or old copies left behind


def test_refuses_bad_input(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not a synthetic dataset'):
        _det(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ['notes.txt']
    with pytest.raises(ValueError, match='num_classes'):
        _det(tmp_path / 'x', num_classes=len(SHAPE_CLASSES) + 1)
    with pytest.raises(TypeError, match='img_size'):
        _det(tmp_path / 'x', img_size=64.)
    with pytest.raises(ValueError, match='at least one image'):
        generate_cifar_like(tmp_path / 'x', num_train=0, num_test=0)


def test_cli(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('generate_synthetic_data', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    paths = tool.main(['cls', '--out', str(tmp_path / 'cls'), '--num-train', '4', '--num-val', '2',
                       '--num-classes', '8'])
    assert json.loads((tmp_path / 'cls' / 'manifest.json').read_text())['args'] == dict(
        num_train=4, num_test=2, seed=0, num_classes=8)
    assert Path(paths['meta_file']).is_file() and 'done in' in capsys.readouterr().out
    paths = tool.main(['det', '--out', str(tmp_path / 'det'), '--num-train', '2', '--num-val', '1',
                       '--img-size', '48'])
    assert cv2.imread(str(Path(paths['val_img_dir']) / '000000.png')).shape == (48, 48, 3)
