"""mmkd's distillation losses under CUDA autocast (fp16, bf16), and the class-means all-reduce over NCCL."""
import os
import os.path as osp
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from mmkd.registry import MODELS
from mmkd.structures import ClassMeans

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
N, D, K = 60, 32, 9  # RoIs (12 x 5 regions for iCD), feature width, classes (background last)
LOSSES = {
    'nd': dict(type='mmkd.NDLoss'),
    'nc': dict(type='mmkd.NCLoss', nc3_weight=1.0, ignore_index=-1),
    'icd_roi': dict(type='mmkd.ICDRoILoss'),
    'icd': dict(type='mmkd.ICDLoss', scales=(1, 2)),
    'kd': dict(type='mmrazor.KLDivergence', tau=1),
}


def loss_inputs(name: str, net: torch.nn.Module, x: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                rois: torch.Tensor) -> dict:
    """The loss's arguments: the student side is ``net(x)`` (low precision under autocast, with a gradient)."""
    feat = net(x)  # [N, D]
    if name == 'nd':
        return dict(student_feat=feat, teacher_feat=teacher, labels=labels)
    if name == 'nc':
        return dict(student_feat=feat, labels=labels, classifier_weight=net.weight[:K])
    logits = feat[:, :K]
    if name == 'icd_roi':
        return dict(student_logits=logits, teacher_logits=teacher[:, :K], rois=rois)
    if name == 'icd':  # [B, K, P] with P = 1 + 4 regions
        return dict(student_logits=logits.reshape(-1, 5, K).transpose(1, 2),
                    teacher_logits=teacher[:, :K].reshape(-1, 5, K).transpose(1, 2))
    return dict(preds_S=logits, preds_T=teacher[:, :K])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
@pytest.mark.parametrize('name', list(LOSSES))
def test_loss_under_autocast_is_float32_and_matches_full_precision(name, dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=gen).cuda()
    teacher = torch.randn(N, D, generator=gen).cuda().relu()
    labels = torch.randint(0, K, (N, ), generator=gen).cuda()
    xy = torch.rand(N, 2, generator=gen) * 200
    rois = torch.cat([torch.arange(N)[:, None] % 2, xy, xy + 10 + torch.rand(N, 2, generator=gen) * 100], 1).cuda()
    net = torch.nn.Linear(D, D).cuda()
    loss = MODELS.build(LOSSES[name]).cuda()
    if hasattr(loss, 'bind_class_means'):
        means = ClassMeans(K, D).cuda()
        means.update(torch.rand(K * 3, D, generator=gen).cuda(), torch.arange(K).repeat(3).cuda())
        loss.bind_class_means(means)

    full = loss(**loss_inputs(name, net, x, teacher, labels, rois))
    with torch.autocast('cuda', dtype=dtype):
        low_inputs = loss_inputs(name, net, x, teacher, labels, rois)
        low = loss(**low_inputs)
    low_feat = next(v for v in low_inputs.values() if v.requires_grad)
    assert low_feat.dtype == dtype  # the student side really is low precision
    assert low.dtype == torch.float32 and torch.isfinite(low), low
    # the same low-precision inputs, upcast, without autocast: mmkd's losses compute in float32 throughout
    # (mmrazor's KD runs partly in the inputs' precision)
    same = loss(**{k: v.float() if v.is_floating_point() else v for k, v in low_inputs.items()})
    exact = 1e-2 if name == 'kd' else 1e-5
    torch.testing.assert_close(low, same, rtol=exact, atol=exact / 10)
    # and it approximates the full-precision loss within the inputs' rounding
    tol = 2e-2 if dtype == torch.float16 else 8e-2
    torch.testing.assert_close(low, full, rtol=tol, atol=tol * float(full.abs()) + 1e-3)
    net.zero_grad()
    low.backward()
    assert torch.isfinite(net.weight.grad).all() and net.weight.grad.abs().sum() > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


NCCL_SCRIPT = textwrap.dedent('''
    import sys
    import torch
    import torch.distributed as dist
    import mmengine.dist.dist as mm_dist
    import mmkd.structures.class_means as cm_module
    from mmkd.structures import ClassMeans

    dist.init_process_group('nccl', init_method=f'tcp://127.0.0.1:{sys.argv[1]}', rank=0, world_size=1)
    torch.cuda.set_device(0)
    assert dist.get_backend() == 'nccl'
    # At world size 1 mmengine and ClassMeans skip the collectives; report 2 ranks so that the NCCL all-reduce of
    # the float64 CUDA buffers really runs (summing over the single rank leaves the values unchanged).
    mm_dist.get_world_size = cm_module.get_world_size = lambda group=None: 2
    gen = torch.Generator().manual_seed(0)
    feats, labels = torch.rand(40, 16, generator=gen).cuda(), torch.randint(0, 5, (40, ), generator=gen).cuda()

    exact = ClassMeans(5, 16).cuda()
    exact.update(feats, labels)
    local = exact.means.clone()
    exact.all_reduce()
    assert exact.sums.dtype == torch.float64 and exact.sums.is_cuda
    torch.testing.assert_close(exact.means, local, rtol=0, atol=0)

    ema = ClassMeans(5, 16, momentum=0.5).cuda()
    ema.update(feats, labels)  # first batch: every class present takes its batch mean (after the all-reduce)
    torch.testing.assert_close(ema.means, local, rtol=1e-6, atol=1e-7)
    calls = []
    real = dist.all_reduce
    dist.all_reduce = lambda t, *a, **k: (calls.append((t.dtype, t.device.type)), real(t, *a, **k))[1]
    exact.all_reduce()
    ema.update(feats, labels)
    assert calls == [(torch.float64, 'cuda')] * 3, calls
    dist.destroy_process_group()
    print('nccl ok')
''')


def test_class_means_all_reduce_over_nccl_at_world_size_1():
    if not torch.distributed.is_nccl_available():
        pytest.fail('this CUDA build of torch has no NCCL')
    proc = subprocess.run([sys.executable, '-c', NCCL_SCRIPT, str(_free_port())], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0 and 'nccl ok' in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
