"""``tools/train.py --amp`` on a machine without CUDA: two training steps under bfloat16 autocast.

mmengine's ``AmpOptimWrapper`` refuses to be built without a GPU; on the CPU ``--amp`` selects
``mmkd.CPUAmpOptimWrapper`` (bfloat16 autocast, no loss scaling). A hook records, from inside the runner, the
dtype the backbone's first convolution, the RoI extractor and the box classifier produced, whether autocast was on,
the losses and the optimizer wrapper, so the test sees that mixed precision really ran and stayed finite.
"""
import json
import math

import pytest
import torch

HOOK_MODULE = '''
import json
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RecordAutocastHook(Hook):
    """Records output dtypes of two layers, the autocast state in the forward, and every iteration's losses."""

    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        self.model, self.record = model, dict(conv1=[], roi_feats=[], fc_cls=[], autocast=[], losses=[])

        def hook(name):
            def fn(module, inputs, output):
                self.record[name].append(str(output.dtype))
                if name == 'conv1':
                    self.record['autocast'].append(torch.is_autocast_enabled('cpu'))
            return fn

        model.backbone.conv1.register_forward_hook(hook('conv1'))
        model.roi_head.bbox_roi_extractor.register_forward_hook(hook('roi_feats'))
        model.roi_head.bbox_head.fc_cls.register_forward_hook(hook('fc_cls'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.record['losses'].append({k: float(v) for k, v in outputs.items()})

    def after_train(self, runner):
        self.record.update(
            optim_wrapper=type(runner.optim_wrapper).__name__,
            param_dtypes=sorted({str(p.dtype) for p in self.model.parameters()}),
            grad_dtypes=sorted({str(p.grad.dtype) for p in self.model.parameters() if p.grad is not None}))
        with open(osp.join(runner.work_dir, 'amp_record.json'), 'w') as f:
            json.dump(self.record, f)
'''


@pytest.fixture
def amp_config(tiny_config, tmp_path):
    (tmp_path / 'record_autocast_hook.py').write_text(HOOK_MODULE)
    config = tmp_path / 'tiny_amp.py'
    config.write_text(f'''_base_ = {tiny_config!r}
custom_imports = dict(imports=['record_run_hook', 'record_autocast_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='RecordRunHook'), dict(type='RecordAutocastHook')]
''')
    return str(config)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path of --amp (CUDA keeps AmpOptimWrapper)')
def test_amp_trains_under_bfloat16_autocast_on_cpu(amp_config, run_tool, tmp_path):
    work_dir = tmp_path / 'work'
    proc = run_tool('tools/train.py', amp_config, '--amp', '--work-dir', str(work_dir), PYTHONPATH=str(tmp_path))
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log, log[-3000:]
    record = json.loads((work_dir / 'amp_record.json').read_text())
    assert record['optim_wrapper'] == 'CPUAmpOptimWrapper'
    assert record['autocast'] == [True, True]  # two training forwards, both inside the autocast region
    assert record['conv1'] == ['torch.bfloat16'] * 2 and set(record['fc_cls']) == {'torch.bfloat16'}
    assert set(record['roi_feats']) == {'torch.float32'}  # RoIs and RoI features are not rounded to bfloat16
    assert record['param_dtypes'] == ['torch.float32'] and record['grad_dtypes'] in ([], ['torch.float32'])
    assert len(record['losses']) == 2
    for losses in record['losses']:
        assert {'loss', 'loss_cls', 'loss_bbox', 'loss_rpn_cls', 'loss_rpn_bbox'} <= set(losses)
        assert all(math.isfinite(v) for v in losses.values()), losses
    ckpt = torch.load(work_dir / 'iter_2.pth', weights_only=False)
    assert all(v.dtype == torch.float32 for v in ckpt['state_dict'].values() if v.is_floating_point())
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values() if v.is_floating_point())
