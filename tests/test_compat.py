"""Each patch of ``mmkd.compat`` and ``mmkd._mim_hook``, with a check that fails without it."""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import mmkd  # noqa: F401  (applies the patches)
from mmkd import _mim_hook, compat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, cwd: str = REPO, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (so no patch of this process leaks in)."""
    return subprocess.run([sys.executable, '-W', 'ignore', '-c', textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_mmrazor_models_need_the_torch2_patches():
    """Without patches 1-2 ``import mmrazor.models`` fails on torch 2.x; with them it imports."""
    unpatched = run_python('import mmrazor.models')
    assert unpatched.returncode != 0
    patched = run_python('''
        import mmkd.compat, mmrazor.models
        from torch.ao.quantization.fuser_method_mappings import reverse2, reverse3, reverse_sequential_wrapper2
        from torch.ao.quantization import fuser_method_mappings as f
        assert reverse2 is f._reverse2 and reverse3 is f._reverse3
        assert reverse_sequential_wrapper2 is f._sequential_wrapper2
        ''')
    assert patched.returncode == 0, patched.stderr[-2000:]


def test_fuser_aliases_and_lazy_backend_configs_are_idempotent():
    from torch.ao.quantization import fuser_method_mappings as fmm
    compat.apply()
    compat.apply()
    assert fmm.reverse2 is fmm._reverse2
    configs = sys.modules[compat._MAPPING_MODULE].BackendConfigs
    assert isinstance(configs, compat._LazyBackendConfigs)
    assert set(configs) == {'academic', 'native', 'tensorrt', 'openvino'} and not configs._cache


def _mmengine_like_checkpoint(path):
    """What mmengine's CheckpointHook writes besides tensors: HistoryBuffers (whose statistics methods pickle as
    ``getattr(HistoryBuffer, name)``), numpy arrays and scalars."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('np', np.arange(3))
    ckpt = dict(meta=dict(epoch=1, seed=np.int64(3)), state_dict={'w': torch.ones(2)},
                message_hub=hub.state_dict(), optimizer=dict(state={}, param_groups=[dict(lr=0.1, params=[0])]))
    torch.save(ckpt, path)


def test_mmengine_checkpoints_load_with_weights_only(tmp_path):
    from mmengine.runner import CheckpointLoader
    path = str(tmp_path / 'ckpt.pth')
    _mmengine_like_checkpoint(path)
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert ckpt['meta']['epoch'] == 1 and torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    assert ckpt['message_hub']['log_scalars']['train/loss'].mean() == 1.0
    assert CheckpointLoader._schemes[''] is compat.load_from_local


def test_checkpoint_loading_fails_without_the_allow_list(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    _mmengine_like_checkpoint(path)
    code = f'''
        import torch, pickle
        try:
            torch.load({path!r}, weights_only=True)
        except pickle.UnpicklingError:
            print('refused')
        '''
    assert 'refused' in run_python(code).stdout


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_malicious_checkpoint_is_refused_with_a_clear_error(tmp_path):
    from mmengine.runner import load_checkpoint
    marker, path = tmp_path / 'pwned', str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': _Evil(marker)}, path)
    with pytest.raises(compat.UnsafeCheckpointError) as err:
        load_checkpoint(torch.nn.Linear(1, 1), path)
    assert 'system' in str(err.value) and 'add_safe_globals' in str(err.value) and path in str(err.value)
    assert not marker.exists()


def test_getattr_in_checkpoints_reaches_only_history_buffer_methods(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import CheckpointLoader
    assert compat._history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean

    class Sneaky:
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__reduce_ex__')

    path = str(tmp_path / 'sneaky.pth')
    torch.save({'meta': Sneaky()}, path)
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(path)
    for obj, name in ((HistoryBuffer, '__init__'), (HistoryBuffer, '_statistics_methods'), (torch, 'load')):
        with pytest.raises(pickle.UnpicklingError):
            compat._history_buffer_getattr(obj, name)


def test_empty_history_buffers_and_arrays_load(tmp_path):
    """numpy pickles the data of an empty array through ``bytes()`` (protocol 2): a checkpoint with an empty
    HistoryBuffer (a message hub before its first update) or any empty array must still load."""
    from mmengine.logging import HistoryBuffer, MessageHub
    from mmengine.runner import CheckpointLoader, load_checkpoint
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub('compat_empty', log_scalars={'train/loss': HistoryBuffer()}, resumed_keys={'train/loss': True})
    hub.update_scalar('train/lr', 0.1)
    hub.update_info('empty', np.zeros((0, 3), dtype=np.int64))
    model = torch.nn.Linear(2, 1)
    path = str(tmp_path / 'empty.pth')
    save_checkpoint(dict(meta=dict(epoch=1, empty=np.array([])), state_dict=model.state_dict(),
                         message_hub=hub.state_dict()), path)
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.data[0].size == 0
    assert ckpt['meta']['empty'].shape == (0, ) and ckpt['message_hub']['runtime_info']['empty'].shape == (0, 3)
    assert ckpt['message_hub']['log_scalars']['train/lr'].current() == 0.1
    target = torch.nn.Linear(2, 1)
    load_checkpoint(target, path)
    assert torch.equal(target.weight, model.weight)
    restored = MessageHub('compat_empty_restored')
    restored.load_state_dict(ckpt['message_hub'])
    assert restored.get_scalar('train/loss').data[0].size == 0


class _BigBytes:
    def __reduce__(self):
        return bytes, (10**6, )


def test_bytes_in_checkpoints_makes_only_empty_byte_strings(tmp_path):
    from mmengine.runner import CheckpointLoader
    assert compat._empty_bytes() == b''
    path = str(tmp_path / 'bytes.pth')
    torch.save({'meta': _BigBytes()}, path)
    with pytest.raises(pickle.UnpicklingError, match='bytes'):
        CheckpointLoader.load_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        compat._empty_bytes('abc', 'utf-8')


def test_old_mmrazor_hook_name_is_registered():
    from mmrazor.engine.hooks import StopDistillHook
    from mmrazor.registry import HOOKS
    hook = HOOKS.build(dict(type='DistillationLossDetachHook', detach_epoch=3))
    assert isinstance(hook, StopDistillHook) and hook.stop_epoch == 3


def test_config_package_table_and_installed_path():
    from mmengine.config.utils import MODULE2PACKAGE
    from mmengine.utils import get_installed_path
    assert MODULE2PACKAGE['mmkd'] == 'mmkd'
    assert os.path.samefile(get_installed_path('mmkd'), os.path.dirname(mmkd.__file__))


def test_mim_hook_patches_mmengine_when_it_is_imported_later():
    """The start-up hook alone (no mmkd import) makes mmengine accept and locate mmkd."""
    code = f'''
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location('hook', {_mim_hook.__file__!r})
        hook = importlib.util.module_from_spec(spec); spec.loader.exec_module(hook)
        hook.install(); hook.install()
        from mmengine.config.utils import MODULE2PACKAGE
        from mmengine.config import config
        print('mmkd' in MODULE2PACKAGE, config.get_installed_path('mmkd'), 'mmkd' in sys.modules)
        '''
    out = run_python(code, cwd='/').stdout.split()
    assert out[0] == 'True' and out[2] == 'False'
    assert os.path.samefile(out[1], os.path.dirname(mmkd.__file__))
    startup = run_python('from mmengine.config.utils import MODULE2PACKAGE; import sys; '
                         'print("mmkd" in MODULE2PACKAGE)', cwd='/')
    assert startup.stdout.strip() == 'True', 'the installed mmkd-config-hook.pth should do the same at start-up'


def test_mmcv_ops_accept_bfloat16_on_the_cpu():
    """Patch 7: mmcv's CPU nms / roi_align with bfloat16 inputs (CPU autocast) compute in float32."""
    from mmcv.ops import nms, roi_align

    from mmkd.compat import mmcv_ops_accept_bfloat16
    mmcv_ops_accept_bfloat16()
    mmcv_ops_accept_bfloat16()  # idempotent: wrapped once
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores.bfloat16(), 0.5)  # scores bfloat16, boxes float32: one type was required
    assert keep.tolist() == [0, 2] and dets[:, 4].tolist() == pytest.approx([0.9, 0.7], abs=1e-2)
    feats = torch.rand(1, 4, 16, 16)
    rois = torch.tensor([[0., 1., 1., 9., 9.]])
    out = roi_align(feats.bfloat16(), rois, (2, 2), 1.0, 2, 'avg', True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), roi_align(feats, rois, (2, 2), 1.0, 2, 'avg', True), atol=2e-2, rtol=2e-2)
    plain = roi_align(feats, rois, (2, 2), 1.0, 2, 'avg', True)  # float32 inputs pass through untouched
    assert plain.dtype == torch.float32


def test_patched_roi_align_backward_on_the_cpu():
    """Regression: patch 7's docstring said autograd casts roi_align's gradient to the inputs' types. mmcv's CPU
    backward gets the output's bfloat16 gradient and has no bfloat16 kernel, so a bfloat16 feature map cannot be
    trained through it; what the docstring now says is what this test shows. Training never sends one there:
    ``CPUAmpOptimWrapper`` makes mmdet's RoI extractors feed float32 maps, whose forward and backward are float32."""
    from mmcv.ops import roi_align

    from mmkd.compat import mmcv_ops_accept_bfloat16
    mmcv_ops_accept_bfloat16()
    rois = torch.tensor([[0., 1., 1., 9., 9.], [0., 4., 2., 15., 12.]])
    feats = torch.rand(1, 4, 16, 16)
    low = feats.bfloat16().requires_grad_()
    out = roi_align(low, rois, (2, 2), 1.0, 2, 'avg', True)
    assert out.dtype == torch.bfloat16 and out.requires_grad  # the forward works ...
    with pytest.raises(NotImplementedError, match="ROIAlign_backward.*BFloat16"):
        out.sum().backward()  # ... the backward does not
    full = feats.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):  # autocast leaves mmcv's op alone: float32 in, float32 out
        out = roi_align(full, rois, (2, 2), 1.0, 2, 'avg', True)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert full.grad.dtype == torch.float32 and torch.isfinite(full.grad).all() and full.grad.abs().sum() > 0


def test_config_text_is_formatted_once_per_content(monkeypatch):
    """Config.pretty_text (read five times per training run) runs yapf once for the same content, gives the text
    mmengine gives, and formats a changed config anew."""
    import mmengine.config.config as config_module
    from mmengine.config import Config
    calls = []
    format_code = config_module.FormatCode
    monkeypatch.setattr(config_module, 'FormatCode', lambda *a, **k: calls.append(1) or format_code(*a, **k))
    cfg = Config(dict(model=dict(type='Net', depth=18, layers=[1, 2, (3, 4)]), seed=11))
    text = cfg.pretty_text
    assert cfg.pretty_text == text and Config(cfg.to_dict()).pretty_text == text and len(calls) == 1
    assert text == Config.__dict__['pretty_text'].fget.__wrapped__(cfg) and len(calls) == 2  # mmengine's own text
    cfg.merge_from_dict({'model.depth': 50})
    assert 'depth=50' in cfg.pretty_text and len(calls) == 3


def _two_ranks(code: str) -> list:
    """Run ``code`` as rank 0 and rank 1 (``sys.argv[1]``) side by side; both must exit with status 0."""
    procs = [subprocess.Popen([sys.executable, '-W', 'ignore', '-c', textwrap.dedent(code), str(r)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    return outs


def test_finish_distributed_waits_for_every_rank_then_destroys_the_group(tmp_path):
    """Two gloo ranks: rank 1 reaches finish_distributed 2 s after rank 0 (it marks its arrival in a file first); rank
    0 must not return from finish_distributed before rank 1 has arrived (the barrier), so the mark is there when it
    returns, and both groups are destroyed; then the process exits normally (status 0, no abort). Nothing is timed:
    the sleep only gives a missing barrier the chance to show."""
    code = f'''
        import os, sys, time, torch.distributed as dist
        from mmkd import compat
        rank = int(sys.argv[1])
        dist.init_process_group('gloo', init_method='file://{tmp_path}/store', rank=rank, world_size=2)
        if rank == 1:
            time.sleep(2)
            open('{tmp_path}/rank1_arrived', 'w').close()
        compat.finish_distributed()
        print('rank 1 had arrived:', os.path.exists('{tmp_path}/rank1_arrived'))
        assert not dist.is_initialized()
        compat.finish_distributed()  # a no-op once destroyed
        '''
    outs = _two_ranks(code)
    assert 'rank 1 had arrived: True' in outs[0], outs[0]


def test_finish_distributed_destroys_no_group_before_every_rank_is_out_of_the_barrier(tmp_path):
    """Rank 0 returns from the barrier 2 s late (a slow rank still completing it) and marks in a file that it is out:
    rank 1, out of its own barrier at once, must not destroy its group before rank 0's mark exists; both exit with
    status 0. Nothing is timed: the sleep only gives a premature destroy the chance to show."""
    code = f'''
        import os, sys, time, torch.distributed as dist
        from mmkd import compat
        rank = int(sys.argv[1])
        dist.init_process_group('gloo', init_method='file://{tmp_path}/store', rank=rank, world_size=2)
        if rank == 0:
            barrier = dist.barrier
            dist.barrier = lambda *a, **k: (barrier(*a, **k), time.sleep(2),
                                            open('{tmp_path}/rank0_out', 'w').close())[0]
        destroy, seen = dist.destroy_process_group, []
        dist.destroy_process_group = lambda *a: (seen.append(os.path.exists('{tmp_path}/rank0_out')), destroy(*a))[1]
        compat.finish_distributed()
        assert not dist.is_initialized() and len(seen) == 1
        print('rank 0 was out of the barrier at destroy:', seen[0])
        '''
    outs = _two_ranks(code)
    assert 'rank 0 was out of the barrier at destroy: True' in outs[1], outs[1]


# ---------------------------------------------------------------------------------------------- the torch floor
def test_torch_version_check_refuses_what_is_older_than_the_floor():
    assert compat.TORCH_FLOOR == (2, 6)
    for old in ('2.5.1', '2.1.0+cu118', '2.4.0', '1.13.1', '2.5.0a0+git1234'):
        assert not compat.torch_version_supported(old), old
        with pytest.raises(ImportError) as err:
            compat.check_torch_version(old)
        message = str(err.value)
        assert '\n' not in message and f'mmkd needs torch >= 2.6, found torch {old}' in message
    for new in ('2.6.0', '2.13.0', '2.14.0.dev2026', '2.6.0+cpu', '3.0.0', '2.10.1'):
        assert compat.torch_version_supported(new), new
        compat.check_torch_version(new)
    with pytest.raises(ValueError, match='not a torch version'):
        compat.torch_version_supported('unknown')


def test_import_mmkd_on_an_old_torch_stops_in_one_line_before_anything_else_fails(tmp_path):
    """A stand-in torch package that has nothing but its version: ``import mmkd`` must stop at the version check,
    not at the first missing attribute (torch.distributed, add_safe_globals, ...)."""
    (tmp_path / 'torch').mkdir()
    (tmp_path / 'torch' / '__init__.py').write_text("__version__ = '2.1.0+cu118'\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))
    proc = subprocess.run([sys.executable, '-c', 'import mmkd'], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(
        'ImportError: mmkd needs torch >= 2.6, found torch 2.1.0+cu118: install torch >= 2.6'), proc.stderr


def test_setup_and_requirements_declare_the_same_torch_floor_and_a_python_numba_supports():
    import ast

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    floor = '.'.join(map(str, compat.TORCH_FLOOR))
    reqs = {}
    for name in sorted(os.listdir(os.path.join(REPO, 'requirements'))):
        with open(os.path.join(REPO, 'requirements', name)) as f:
            for line in f:
                line = line.split('#')[0].strip()
                if line:
                    req = Requirement(line)
                    reqs.setdefault(req.name, []).append((name, req.specifier))
    assert ('runtime.txt', SpecifierSet(f'>={floor}')) in reqs['torch']
    for name, spec in reqs['torch']:  # every file that names torch agrees with the check, at the floor's edge
        for version in ('2.5.1', '2.1.0', '2.6.0', '2.13.0'):
            assert spec.contains(version, prereleases=True) == compat.torch_version_supported(version), (name, version)
    # setup.py installs runtime.txt and asks for a Python that numba (runtime.txt) supports
    with open(os.path.join(REPO, 'setup.py')) as f:
        tree = ast.parse(f.read())
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'setup')
    kwargs = {k.arg: k.value for k in call.keywords}
    assert ast.unparse(kwargs['install_requires']) == "requirements('runtime.txt')"
    python = SpecifierSet(ast.literal_eval(kwargs['python_requires']))
    assert not python.contains('3.9') and python.contains('3.10') and python.contains('3.13')
    assert any(str(spec).startswith('>=0.63') for _, spec in reqs['numba'])
