"""The CIFAR-100 reader on files written here in the official python-pickle format, and its pipeline."""
import copy
import glob
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

import mmkd  # noqa: F401
from mmkd.registry import DATASETS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def write_official(folder, n_train=6, n_test=4, num_classes=5):
    """Write train/test/meta exactly like cifar-100-python: python-2 pickles with byte-string keys, data
    uint8 [N, 3072] as R, G, B planes of 32x32 row-major."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (('train', n_train), ('test', n_test)):
        imgs = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # HWC, RGB
        labels = [int(i % num_classes) for i in range(n)]
        data = imgs.transpose(0, 3, 1, 2).reshape(n, -1)
        with open(folder / split, 'wb') as f:
            pickle.dump({b'filenames': [b'x.png'] * n, b'batch_label': b'batch', b'fine_labels': labels,
                         b'coarse_labels': [0] * n, b'data': data}, f, protocol=2)
        splits[split] = (imgs, labels)
    with open(folder / 'meta', 'wb') as f:
        pickle.dump({b'fine_label_names': [f'c{i}'.encode() for i in range(num_classes)],
                     b'coarse_label_names': [b'all']}, f, protocol=2)
    return splits


def test_reads_official_format(tmp_path):
    splits = write_official(tmp_path / 'cifar-100-python')
    ds = DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path), split='test', pipeline=[
        dict(type='PackClsInputs')]))
    assert len(ds) == 4 and ds.metainfo['classes'] == ('c0', 'c1', 'c2', 'c3', 'c4') and ds.test_mode
    imgs, labels = splits['test']
    for i in range(4):
        item = ds[i]
        assert item['inputs'].dtype == torch.uint8 and item['inputs'].shape == (3, 32, 32)
        np.testing.assert_array_equal(item['inputs'].permute(1, 2, 0).numpy(), imgs[i])  # R, G, B planes
        assert item['data_samples'].gt_label.tolist() == [labels[i]]
        assert item['data_samples'].sample_idx == i


def test_train_pipeline_crops_flips_and_collates(tmp_path):
    write_official(tmp_path)  # files directly under data_root
    ds = DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path), split='train', pipeline=[
        dict(type='ClsRandomCrop', crop_size=32, padding=4), dict(type='RandomFlip', prob=1.0),
        dict(type='PackClsInputs')]))
    assert not ds.test_mode and len(ds) == 6
    raw = ds.get_data_info(0)['img']
    np.random.seed(0)
    out = [ds[0]['inputs'].numpy() for _ in range(20)]
    assert all(o.shape == (3, 32, 32) for o in out)
    # each output is a flipped 32x32 window of the zero-padded original; the window offsets vary
    padded = np.pad(raw, ((4, 4), (4, 4), (0, 0))).transpose(2, 0, 1)
    offsets = set()
    for o in out:
        unflipped = o[:, :, ::-1]
        hits = [(y, x) for y in range(9) for x in range(9)
                if np.array_equal(padded[:, y:y + 32, x:x + 32], unflipped)]
        assert hits, 'output is not a flipped crop of the padded image'
        offsets.add(hits[0])
    assert len(offsets) > 1
    batch = pseudo_collate([ds[i] for i in range(3)])
    assert len(batch['inputs']) == 3 and len(batch['data_samples']) == 3


def test_missing_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match='cifar-100-python.*generate_synthetic_data.py cls'):
        DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path / 'nothing')))


SYNTHETIC_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'cls', 'synthetic', '*.py')))


@pytest.mark.parametrize('config', SYNTHETIC_CONFIGS, ids=osp.basename)
def test_synthetic_configs_say_how_to_generate_missing_data(config, tmp_path):
    """A synthetic config whose data is missing names the generator command (with the config's data root), not
    the CIFAR-100 download."""
    cfg = Config.fromfile(config)
    root = str(tmp_path / 'not_generated')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = copy.deepcopy(cfg[loader]['dataset'])
        dataset['data_root'] = root
        with pytest.raises(FileNotFoundError) as error:
            DATASETS.build(dataset)
        message = str(error.value)
        assert f'python tools/misc/generate_synthetic_data.py cls --out {root} ' in message, message
        assert 'cifar-100-python.tar.gz' not in message and 'Download' not in message, message


def test_cifar100_configs_still_say_where_cifar100_goes(tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cls', 'cifar100', 'kdpp_res56_res20.py'))
    dataset = dict(cfg.train_dataloader.dataset, data_root=str(tmp_path / 'cifar100'))
    with pytest.raises(FileNotFoundError, match=r'Download https://www\.cs\.toronto\.edu/~kriz/cifar-100-python'):
        DATASETS.build(dataset)


def test_bad_files_raise(tmp_path):
    write_official(tmp_path, num_classes=5)
    with open(tmp_path / 'meta', 'wb') as f:
        pickle.dump({b'fine_label_names': [b'a', b'b']}, f, protocol=2)  # labels go up to 4
    with pytest.raises(ValueError, match='labels must lie in'):
        DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path)))
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path), split='val'))


def test_reads_the_synthetic_generator_output(tmp_path):
    from mmkd.datasets.synthetic import generate_cifar_like
    generate_cifar_like(tmp_path / 'syn', num_train=8, num_test=4, seed=0, num_classes=3)
    ds = DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path / 'syn'), pipeline=[
        dict(type='PackClsInputs')]))
    assert len(ds) == 8 and len(ds.metainfo['classes']) == 3
    assert set(int(ds[i]['data_samples'].gt_label) for i in range(8)) <= {0, 1, 2}


def test_index_range_keeps_a_slice_of_the_split(tmp_path):
    """Training on the first images of the train split and tuning on the ones after them (cls_study --eval-on
    heldout): disjoint slices of the file's samples, in order; ranges out of bounds are refused."""
    splits = write_official(tmp_path, n_train=6)
    imgs, labels = splits['train']
    pack = [dict(type='PackClsInputs')]
    first = DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path), index_range=[0, 4], pipeline=pack))
    rest = DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path), index_range=(4, 6), test_mode=True,
                               pipeline=pack))
    assert len(first) == 4 and len(rest) == 2 and rest.test_mode
    for ds, idx in ((first, range(4)), (rest, range(4, 6))):
        for j, i in enumerate(idx):
            item = ds[j]
            assert item['data_samples'].gt_label.tolist() == [labels[i]]
            np.testing.assert_array_equal(item['inputs'].permute(1, 2, 0).numpy(), imgs[i])
    with pytest.raises(ValueError, match=r'reaches past the 6 samples'):
        DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path), index_range=[4, 7]))
    for bad in ([3, 3], [-1, 2], [1]):
        with pytest.raises(ValueError, match='index_range must be'):
            DATASETS.build(dict(type='CIFAR100', data_root=str(tmp_path), index_range=bad))
