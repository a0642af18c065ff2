"""``tools/model_converters/convert_kd_ckpt_to_student.py`` on a fabricated distillation checkpoint."""
import argparse
import hashlib
import importlib.util
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.runner import load_checkpoint

TOOL = 'tools/model_converters/convert_kd_ckpt_to_student.py'
_spec = importlib.util.spec_from_file_location('convert_kd_ckpt_to_student', osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), TOOL))
converter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(converter)


def _args(checkpoint: str, out_path: str = None, inplace: bool = False) -> argparse.Namespace:
    return argparse.Namespace(checkpoint=checkpoint, out_path=out_path, inplace=inplace)


def _build_student(config: str) -> torch.nn.Module:
    register_all_modules()
    return MODELS.build(Config.fromfile(config, import_custom_modules=False).model)


@pytest.fixture
def kd_checkpoint(trained, tmp_path):
    """A distillation-style checkpoint made from a real training checkpoint (optimizer, schedulers, message hub
    with HistoryBuffers): the student's weights under ``architecture.``, plus ``teacher.*``, ``distiller.*`` and
    ``class_means.*`` weights."""
    ckpt = torch.load(osp.join(trained, 'iter_2.pth'), weights_only=False)  # written by this test session
    student = ckpt['state_dict']
    ckpt['state_dict'] = {f'architecture.{k}': v for k, v in student.items()}
    ckpt['state_dict'].update({'teacher.backbone.conv1.weight': torch.randn(64, 3, 7, 7),
                               'teacher.architecture.fc.weight': torch.randn(2, 4),
                               'distiller.connectors.proj.weight': torch.randn(8, 4),
                               'class_means.means': torch.randn(3, 8)})
    path = tmp_path / 'kd_iter_2.pth'
    torch.save(ckpt, path)
    return path, student


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_student_checkpoint_loads_into_plain_student(kd_checkpoint, run_tool, tiny_config):
    path, student = kd_checkpoint
    digest = _sha256(path)
    proc = run_tool(TOOL, str(path))
    out = path.with_name('kd_iter_2_student.pth')
    assert 'dropped 1 class_means.*, 1 distiller.*, 2 teacher.*' in proc.stdout
    assert _sha256(path) == digest  # input untouched

    converted = torch.load(out, weights_only=True)
    assert set(converted) == {'meta', 'state_dict'}
    classes = Config.fromfile(tiny_config, import_custom_modules=False).metainfo['classes']
    assert converted['meta']['iter'] == 2 and tuple(converted['meta']['dataset_meta']['classes']) == classes
    assert converted['meta']['converted_from_kd']['source'] == 'kd_iter_2.pth'
    assert converted['state_dict'].keys() == student.keys()  # prefix stripped, nothing else kept

    model = _build_student(tiny_config)  # fresh random init, then strict load
    load_checkpoint(model, str(out), map_location='cpu', strict=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, student[key], rtol=0, atol=0)
    assert not torch.equal(_build_student(tiny_config).state_dict()['roi_head.bbox_head.fc_cls.weight'],
                           student['roi_head.bbox_head.fc_cls.weight'])  # the load did something


def test_output_path_rules(tmp_path):
    inp = str(tmp_path / 'kd.pth')
    (tmp_path / 'out').mkdir()
    assert converter.output_path(_args(inp)) == str(tmp_path / 'kd_student.pth')
    assert converter.output_path(_args(inp, out_path=str(tmp_path / 'out'))) == str(tmp_path / 'out' / 'kd_student.pth')
    assert converter.output_path(_args(inp, out_path=str(tmp_path / 's.pth'))) == str(tmp_path / 's.pth')
    assert converter.output_path(_args(inp, inplace=True)) == inp
    with pytest.raises(ValueError, match='pass --inplace'):
        converter.output_path(_args(inp, out_path=inp))
    with pytest.raises(ValueError, match='exclude each other'):
        converter.output_path(_args(inp, out_path=str(tmp_path / 's.pth'), inplace=True))


def test_refuses_non_distillation_checkpoint():
    with pytest.raises(ValueError, match='not a distillation checkpoint'):
        converter.convert(dict(meta={}, state_dict={'backbone.conv1.weight': torch.zeros(1)}), 'plain.pth')
    with pytest.raises(ValueError, match='no "state_dict"'):
        converter.convert(dict(meta={}), 'odd.pth')


def test_inplace_replaces_input_atomically(kd_checkpoint, run_tool, tmp_path):
    path, student = kd_checkpoint
    run_tool(TOOL, str(path), '--inplace')
    assert torch.load(path, weights_only=True)['state_dict'].keys() == student.keys()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
