"""``tools/train.py --deterministic``: runs at a fixed seed repeat bit for bit on the CPU.

Three 2-iteration trainings of the tiny detector, all seed 0 and one torch thread: two with ``--deterministic``
and one without. The flag must reach mmengine (``randomness.deterministic``, which turns on
``torch.use_deterministic_algorithms``), the two flagged runs must log the same losses and save the same weights
bit for bit, and, on the CPU at a fixed thread count, so must the run without the flag (measured: no CPU kernel
these models use depends on anything but the thread count; see docs/reproducibility.md).
"""
import glob
import json
import os.path as osp

import torch

HOOK_MODULE = '''
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RecordDeterminismHook(Hook):
    """Writes whether torch's deterministic algorithms were on while training."""

    def before_train(self, runner):
        with open(osp.join(runner.work_dir, 'deterministic.txt'), 'w') as f:
            f.write(str(torch.are_deterministic_algorithms_enabled()))
'''


def _train(run_tool, config, work_dir, *flags, pythonpath):
    run_tool('tools/train.py', config, '--work-dir', str(work_dir), *flags, '--cfg-options', 'randomness.seed=0',
             PYTHONPATH=pythonpath)
    scalars = sorted(glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json')))[-1]
    with open(scalars) as f:
        losses = [{k: v for k, v in json.loads(line).items() if k.startswith('loss')} for line in f]
    state = torch.load(work_dir / 'iter_2.pth', weights_only=False)['state_dict']
    return (work_dir / 'deterministic.txt').read_text(), losses, state


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f'{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}'


def test_same_seed_gives_identical_runs_with_and_without_deterministic(tiny_config, run_tool, tmp_path):
    (tmp_path / 'record_determinism_hook.py').write_text(HOOK_MODULE)
    config = tmp_path / 'tiny_seeded.py'
    config.write_text(f'''_base_ = {tiny_config!r}
custom_imports = dict(imports=['record_run_hook', 'record_determinism_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='RecordRunHook'), dict(type='RecordDeterminismHook')]
''')
    flagged_a, losses_a, state_a = _train(run_tool, str(config), tmp_path / 'a', '--deterministic',
                                          pythonpath=str(tmp_path))
    flagged_b, losses_b, state_b = _train(run_tool, str(config), tmp_path / 'b', '--deterministic',
                                          pythonpath=str(tmp_path))
    plain, losses_c, state_c = _train(run_tool, str(config), tmp_path / 'c', pythonpath=str(tmp_path))

    assert (flagged_a, flagged_b, plain) == ('True', 'True', 'False')
    dumped = glob.glob(str(tmp_path / 'a' / '*.py'))
    assert any('deterministic=True' in open(p).read() for p in dumped), dumped
    assert len(losses_a) == 2 and all(losses_a)
    assert losses_a == losses_b == losses_c  # exact float equality of every logged loss
    _assert_identical(state_a, state_b)
    _assert_identical(state_a, state_c)
    assert osp.isfile(tmp_path / 'a' / 'iter_2.pth')
