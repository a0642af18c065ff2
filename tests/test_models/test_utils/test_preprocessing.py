"""The teacher sees the inputs it was trained on: ``compare_preprocessing``, the per-channel conversion, the
normalisation stored in a teacher checkpoint, and ``teacher_preprocessing`` of the algorithms ('convert' by
default, 'refuse', 'ignore'), on tiny classifiers."""
import pytest
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.structures import DetDataSample
from mmengine.registry import DefaultScope

import mmkd  # noqa: F401
from mmkd.models.algorithms import base as base_module
from mmkd.models.utils.preprocessing import (checkpoint_preprocessor, compare_preprocessing, config_text_values,
                                             input_conversion, preprocessing_summary)
from mmkd.registry import MODELS

PYTORCH = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)  # RGB, ImageNet
CAFFE = dict(mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0], bgr_to_rgb=False)  # BGR, std 1 (mmdet caffe)
K = 5


@pytest.fixture(autouse=True)
def mmkd_scope():
    with DefaultScope.overwrite_default_scope('mmkd'):
        yield


def raw_images(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8) for _ in range(n)]


def preprocess(settings: dict, images) -> torch.Tensor:
    """What a DetDataPreprocessor with ``settings`` makes of raw (BGR) images."""
    dp = DetDataPreprocessor(**settings)
    return dp(dict(inputs=[i.clone() for i in images], data_samples=[DetDataSample() for _ in images]))['inputs']


# ---------------------------------------------------------------------------------------------- the comparison
def test_compare_names_each_differing_setting():
    assert compare_preprocessing(PYTORCH, PYTORCH) == []
    assert compare_preprocessing(PYTORCH, dict(PYTORCH, mean=[123.68, 116.28, 103.53])) == []  # within 1e-3
    diffs = compare_preprocessing(PYTORCH, CAFFE)
    assert len(diffs) == 3
    assert diffs[0] == 'mean [123.675, 116.28, 103.53] (student) vs [103.53, 116.28, 123.675] (teacher)'
    assert diffs[1].startswith('std [58.395, 57.12, 57.375] (student) vs [1.0, 1.0, 1.0]')
    assert 'bgr_to_rgb=True' in diffs[2] and 'bgr_to_rgb=False' in diffs[2] and 'reversed' in diffs[2]
    # rgb_to_bgr reverses the channels as bgr_to_rgb does; padding is not compared
    assert compare_preprocessing(PYTORCH, dict(PYTORCH, bgr_to_rgb=False, rgb_to_bgr=True, pad_value=114)) == []
    # no mean/std: no normalisation, the same as mean 0 / std 1; one value serves every channel
    assert compare_preprocessing(dict(), dict(mean=[0, 0, 0], std=[1, 1, 1])) == []
    assert compare_preprocessing(dict(mean=[127.5], std=[127.5]), dict(mean=[127.5] * 3, std=[127.5] * 3)) == []


def test_summary_of_a_built_preprocessor_reads_its_float32_buffers_back_exactly():
    summary = preprocessing_summary(DetDataPreprocessor(**PYTORCH))
    assert summary['mean'] == PYTORCH['mean'] and summary['std'] == PYTORCH['std'] and summary['swap_channels']
    assert compare_preprocessing(DetDataPreprocessor(**PYTORCH), PYTORCH) == []


@pytest.mark.parametrize('student,teacher', [(PYTORCH, CAFFE), (CAFFE, PYTORCH), (PYTORCH, dict()),
                                             (dict(PYTORCH, bgr_to_rgb=False), PYTORCH)])
def test_conversion_gives_what_the_teachers_own_preprocessor_gives(student, teacher):
    images = raw_images()
    conversion = input_conversion(student, teacher)
    converted = conversion(preprocess(student, images))
    torch.testing.assert_close(converted, preprocess(teacher, images), rtol=1e-6, atol=1e-4)
    assert input_conversion(student, student) is None


# ---------------------------------------------------------------------------------------------- checkpoint meta
def test_checkpoint_training_config_is_read_not_executed(tmp_path):
    witness = tmp_path / 'executed'
    mmengine_cfg = (f"model = dict(type='FasterRCNN', data_preprocessor=dict(type='DetDataPreprocessor', "
                    f"mean={CAFFE['mean']}, std={CAFFE['std']}, bgr_to_rgb=False, pad_size_divisor=32))\n"
                    f"work_dir = __import__('pathlib').Path({str(witness)!r}).touch()\n")
    found, where = checkpoint_preprocessor(dict(meta=dict(cfg=mmengine_cfg)))
    assert compare_preprocessing(found, CAFFE) == [] and "meta['cfg']" in where
    assert not witness.exists()
    # an mmcv 1.x (mmdet 2.x model zoo) checkpoint: the Normalize of its training pipeline
    mmcv_cfg = ("img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)\n"
                "data = dict(train=dict(type='CocoDataset', pipeline=[dict(type='LoadImageFromFile'), dict(\n"
                "    type='Normalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)]))\n")
    found, where = checkpoint_preprocessor(dict(meta=dict(config=mmcv_cfg)))
    assert compare_preprocessing(found, PYTORCH) == [] and "meta['config']" in where
    assert checkpoint_preprocessor(dict(state_dict={})) is None
    assert checkpoint_preprocessor(dict(meta=dict(cfg='model = dict(type=Foo)'))) is None
    assert config_text_values('a = dict(b=1, c=f(2))\nd = e') == dict(a=dict(b=1))


# ---------------------------------------------------------------------------------------------- the algorithms
def classifier(arch: str, dp: dict) -> dict:
    return dict(type='ImageClassifier', backbone=dict(type='CIFARResNet', arch=arch),
                head=dict(type='LinearClsHead', num_classes=K, in_channels=64),
                data_preprocessor=dict(type='ImgDataPreprocessor', **dp))


def algorithm(student_dp=PYTORCH, teacher_dp=PYTORCH, **kwargs):
    cfg = dict(type='ClsDistill', architecture=classifier('resnet8', student_dp),
               teacher=classifier('resnet14', teacher_dp),
               distiller=dict(type='ConfigurableDistiller',
                              distill_losses=dict(loss_kd=dict(type='KLDivergence', tau=4)),
                              loss_forward_mappings=dict(loss_kd=dict(
                                  preds_S=dict(recorder='logits', from_student=True),
                                  preds_T=dict(recorder='logits', from_student=False)))))
    cfg.update(kwargs)
    cfg.setdefault('allow_random_teacher', not cfg.get('teacher_ckpt'))
    return MODELS.build(cfg)


@pytest.fixture
def logs(monkeypatch):
    """The messages the algorithms log."""
    seen = []
    monkeypatch.setattr(base_module, 'print_log', lambda msg, *a, **k: seen.append(msg))
    return seen


def save_teacher(path, dp=None, fits=True) -> str:
    teacher = MODELS.build(classifier('resnet14' if fits else 'resnet8', PYTORCH))
    meta = {} if dp is None else dict(cfg=f'model = dict(type=\'ImageClassifier\', data_preprocessor={dp!r})\n')
    torch.save(dict(state_dict=teacher.state_dict(), meta=meta), path)
    return str(path)


def test_mismatch_is_refused_before_the_teacher_weights_are_loaded(tmp_path, logs):
    junk = tmp_path / 'not_a_checkpoint.pth'
    junk.write_bytes(b'loading this would fail with another error')
    with pytest.raises(ValueError) as err:
        algorithm(teacher_dp=CAFFE, teacher_preprocessing='refuse', teacher_ckpt=str(junk))
    msg = str(err.value)
    assert 'trained with mean [103.53, 116.28, 123.675], std [1.0, 1.0, 1.0], bgr_to_rgb=False' in msg
    assert "model.teacher's data_preprocessor" in msg
    assert 'normalised with mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375], bgr_to_rgb=True' in msg
    assert "teacher_preprocessing='convert'" in msg and 'model.architecture.data_preprocessor' in msg
    with pytest.raises(ValueError, match="teacher_preprocessing must be one of"):
        algorithm(teacher_preprocessing='convet')


def test_checkpoint_trained_otherwise_is_refused_before_its_weights_are_loaded(tmp_path):
    """The teacher config agrees with the student, the checkpoint's training config does not: the checkpoint
    is what the weights were trained with. (It does not even fit: the refusal comes first.)"""
    ckpt = save_teacher(tmp_path / 't.pth', dp=CAFFE, fits=False)
    expected = r"std \[1\.0, 1\.0, 1\.0\], bgr_to_rgb=False \(teacher_ckpt .*t\.pth.*meta\['cfg'\]\)"
    with pytest.raises(ValueError, match=expected):
        algorithm(teacher_ckpt=ckpt, teacher_preprocessing='refuse')


def test_convert_is_the_default_and_feeds_the_teacher_its_own_normalisation(tmp_path, logs):
    model = algorithm(student_dp=PYTORCH, teacher_dp=CAFFE)
    assert model.teacher_preprocessing == 'convert'
    images = raw_images(seed=1)
    data = model.data_preprocessor(dict(inputs=[i.clone() for i in images], data_samples=None), False)
    own = model.teacher.data_preprocessor(dict(inputs=[i.clone() for i in images], data_samples=None), False)
    torch.testing.assert_close(model.teacher_inputs(data['inputs']), own['inputs'], rtol=1e-6, atol=1e-4)
    assert not torch.allclose(data['inputs'], own['inputs'])
    assert any("teacher_preprocessing='convert'" in m and 'x_teacher = x[:, [2, 1, 0]]' in m for m in logs)
    # the checkpoint's training config wins over the teacher config's: here it says the student's normalisation
    model = algorithm(student_dp=PYTORCH, teacher_dp=CAFFE, teacher_ckpt=save_teacher(tmp_path / 't.pth', PYTORCH))
    assert model._teacher_input_conversion is None
    assert any('differs from the one teacher_ckpt' in m for m in logs)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model.teacher_inputs(x), x, rtol=0, atol=0)


def test_ignore_feeds_the_students_inputs(logs):
    model = algorithm(teacher_dp=CAFFE, teacher_preprocessing='ignore')
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(model.teacher_inputs(x), x)
    assert any("teacher_preprocessing='ignore'" in m for m in logs)


def test_matching_pair_builds_silently(tmp_path, logs):
    model = algorithm(teacher_dp=dict(PYTORCH, pad_size_divisor=32), teacher_preprocessing='refuse',
                      teacher_ckpt=save_teacher(tmp_path / 't.pth', PYTORCH))
    assert model._teacher_input_conversion is None
    assert not [m for m in logs if 'normalis' in m or 'preprocess' in m]
