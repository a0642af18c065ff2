"""``tools/train.py`` (train, checkpoint, resume) and ``tools/test.py`` (COCO metrics, --out, --show-dir) on CPU."""
import glob
import os.path as osp
import pickle
import re
import shutil

import torch


def _momentum_buffers(optim_state: dict) -> dict:
    return {idx: s['momentum_buffer'] for idx, s in optim_state['state'].items()}


def test_train_saves_checkpoint(trained):
    ckpt = torch.load(osp.join(trained, 'iter_2.pth'), weights_only=False)
    assert ckpt['meta']['iter'] == 2
    assert {'state_dict', 'optimizer', 'param_schedulers', 'message_hub'} <= set(ckpt)
    buffers = _momentum_buffers(ckpt['optimizer'])
    assert buffers and any(b.abs().sum() > 0 for b in buffers.values())


def test_resume_restores_iteration_and_optimizer(trained, run_tool, tiny_config, tmp_path):
    work_dir = tmp_path / 'resumed'
    shutil.copytree(trained, work_dir)
    # bare --resume: the latest checkpoint of work_dir (iter_2.pth)
    proc = run_tool('tools/train.py', tiny_config, '--work-dir', str(work_dir), '--resume',
                    '--cfg-options', 'train_cfg.max_iters=3')
    log = proc.stdout + proc.stderr
    assert re.search(r'resumed epoch: \d+, iter: 2\b', log), log[-3000:]
    assert 'Iter(train) [3/3]' in log and 'Iter(train) [1/3]' not in log

    saved = torch.load(osp.join(trained, 'iter_2.pth'), weights_only=False)
    started = torch.load(work_dir / 'before_train_rank0.pth', weights_only=True)
    assert started['iter'] == 2
    saved_buffers, started_buffers = _momentum_buffers(saved['optimizer']), _momentum_buffers(started['optimizer'])
    assert saved_buffers.keys() == started_buffers.keys() and saved_buffers
    for idx, buffer in saved_buffers.items():
        torch.testing.assert_close(started_buffers[idx], buffer, rtol=0, atol=0)
    assert started['optimizer']['param_groups'][0]['lr'] == saved['optimizer']['param_groups'][0]['lr']

    after = torch.load(work_dir / 'iter_3.pth', weights_only=False)
    assert after['meta']['iter'] == 3
    assert any(not torch.equal(after_buf, saved_buffers[idx])
               for idx, after_buf in _momentum_buffers(after['optimizer']).items())
    assert (work_dir / 'after_train_rank0.txt').read_text() == '1 3'


def test_test_tool_reports_coco_metrics(trained, run_tool, tiny_config, tmp_path):
    out = tmp_path / 'preds.pkl'
    proc = run_tool('tools/test.py', tiny_config, osp.join(trained, 'iter_2.pth'), '--work-dir', str(tmp_path),
                    '--out', str(out), '--show-dir', 'vis')
    log = proc.stdout + proc.stderr
    assert re.search(r'coco/bbox_mAP: -?\d+\.\d+', log), log[-3000:]
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 4 and all('pred_instances' in p for p in predictions)
    assert len(glob.glob(str(tmp_path / '*' / 'vis' / '*.png'))) == 4


def test_test_tool_refuses_a_checkpoint_that_does_not_fit(trained, run_tool, tiny_config, tmp_path):
    """mmengine would evaluate it with a keys warning and the mismatched weights left random."""
    out = tmp_path / 'preds.pkl'
    proc = run_tool('tools/test.py', tiny_config, osp.join(trained, 'iter_2.pth'), '--work-dir', str(tmp_path),
                    '--out', str(out), '--cfg-options', 'model.roi_head.bbox_head.num_classes=3', ok=False)
    log = proc.stdout + proc.stderr
    assert re.search(r'does not fit .*tiny_faster_rcnn_r18\.py: 4 of the \d+ weights of the model of this config', log)
    assert 'roi_head.bbox_head.fc_cls.weight: [3, 1024] in the checkpoint, [4, 1024] in the model' in log, log[-3000:]
    assert 'Iter(test)' not in log and not out.exists()
