"""``tools/train.py`` refuses a distillation config without ``teacher_ckpt`` before building anything, unless the
teacher's weights will come from ``load_from`` / ``--resume`` or ``model.allow_random_teacher=True`` says the
random teacher is meant."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ND = 'configs/demo/faster_rcnn_r50_r18_nd.py'


@pytest.fixture(scope='module')
def train_tool():
    spec = importlib.util.spec_from_file_location('mmkd_train_tool', osp.join(REPO, 'tools/train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config(path: str = ND, **options) -> Config:
    cfg = Config.fromfile(osp.join(REPO, path))
    cfg.merge_from_dict(options)
    return cfg


def test_refused_without_teacher_ckpt_unless_weights_come_from_elsewhere(train_tool):
    with pytest.raises(ValueError, match=r'RoIDistill: model\.teacher_ckpt is not set.*randomly initialised teacher'
                                         r'.*--cfg-options model\.teacher_ckpt=PATH.*--resume / load_from'
                                         r'.*model\.allow_random_teacher=True'):
        train_tool.refuse_random_teacher(config(**{'model.teacher_ckpt': None}))
    train_tool.refuse_random_teacher(config())  # the config's own teacher_ckpt
    for options in ({'model.allow_random_teacher': True}, {'load_from': 'work_dirs/x/iter_10.pth'},
                    {'resume': True}):
        train_tool.refuse_random_teacher(config(**{'model.teacher_ckpt': None, **options}))
    # not a distillation config: nothing to say
    train_tool.refuse_random_teacher(config('configs/demo/faster_rcnn_r50_teacher.py'))
    classification = config('configs/cls/synthetic/kdpp_res56_res20_synthetic.py', **{'model.teacher_ckpt': ''})
    with pytest.raises(ValueError, match='ClsDistill: model.teacher_ckpt is not set'):
        train_tool.refuse_random_teacher(classification)


def test_train_tool_stops_before_building_anything(run_tool, tmp_path):
    proc = run_tool('tools/train.py', ND, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                    'model.teacher_ckpt=None', ok=False)
    assert 'ValueError: RoIDistill: model.teacher_ckpt is not set' in proc.stderr
    assert not (tmp_path / 'work').exists()  # no work dir, no log: stopped before the runner existed
