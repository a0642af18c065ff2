"""Time and measure mmkd's distillation losses at detection and classification size.

For every loss: the median wall time of forward + backward over ``--repeats`` runs (after ``--warmup`` runs)
and the peak memory of one forward + backward above what was allocated before it (inputs not counted):

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``;
* CPU: the peak of the running sum of the per-operator self allocations / frees that ``torch.profiler``
  records with ``profile_memory=True`` (op granularity, so a temporary freed inside one op is not seen).

Sizes: detection = 2 images x 512 RoIs, D = 1024, K = 81 (80 classes + background); classification =
B = 128, D = 2048, K = 1000, P = 21 regions. KD (mmrazor ``KLDivergence``) is timed for reference, and so is
the block-mask variant of the grouped iCD that :func:`mmkd.models.losses.functional.icd_grouped_loss` was
chosen against.

Example::

    python tools/analysis/benchmark_losses.py --device cpu --repeats 10 --warmup 2 --threads 1
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from mmkd.models.losses import ICDLoss, ICDRoILoss, NCLoss, NDLoss
from mmkd.models.losses.functional import _relation_kl
from mmkd.registry import MODELS
from mmkd.structures import ClassMeans


def icd_grouped_block_mask(student_logits: torch.Tensor, teacher_logits: torch.Tensor, group_ids: torch.Tensor,
                           tau: float = 2.0) -> torch.Tensor:
    """Reference: the same loss as ``icd_grouped_loss`` from one [R, R] Gram with a block mask."""
    zs, zt = F.normalize(student_logits, dim=1), F.normalize(teacher_logits.detach(), dim=1)
    mask = group_ids[:, None] == group_ids[None, :]
    row_kl = _relation_kl(zs @ zs.t(), zt @ zt.t(), tau, mask)
    size = mask.sum(dim=1).to(row_kl.dtype)
    num_groups = torch.where(size > 1, 1 / size, 0).sum()
    return (row_kl / size).sum() / num_groups.clamp_min(1)


def class_means(num_classes: int, dim: int, device: torch.device) -> ClassMeans:
    means = ClassMeans(num_classes, dim).to(device)
    means.update(torch.randn(4 * num_classes, dim, device=device).relu(), torch.arange(4 * num_classes,
                                                                                      device=device) % num_classes)
    return means


def detection_cases(device: torch.device) -> Dict[str, Tuple[Callable, List[torch.Tensor]]]:
    images, per_image, dim, num_classes = 2, 512, 1024, 81
    rois_n = images * per_image
    s_feat = torch.randn(rois_n, dim, device=device).relu().requires_grad_()
    t_feat = torch.randn(rois_n, dim, device=device).relu()
    labels = torch.randint(0, num_classes, (rois_n, ), device=device)
    weights = torch.ones(rois_n, device=device)
    s_logits = torch.randn(rois_n, num_classes, device=device, requires_grad=True)
    t_logits = torch.randn(rois_n, num_classes, device=device)
    fc_cls = torch.randn(num_classes, dim, device=device, requires_grad=True)
    xy = torch.rand(rois_n, 2, device=device) * 600
    wh = torch.rand(rois_n, 2, device=device) * 400 + 8
    rois = torch.cat([torch.arange(images, device=device).repeat_interleave(per_image)[:, None].float(), xy,
                      xy + wh], 1)
    means = class_means(num_classes, dim, device)
    nd, nc = NDLoss(), NCLoss(nc3_weight=1.0, ignore_index=num_classes - 1)
    nd.bind_class_means(means)
    nc.bind_class_means(means)
    kd = MODELS.build(dict(type='mmrazor.KLDivergence', tau=1.0))
    by_image, by_level = ICDRoILoss(), ICDRoILoss(group_by='image_level')
    images_of = rois[:, 0].long()
    return {
        'ND': (lambda: nd(s_feat, t_feat, labels, weights), [s_feat]),
        'KD (mmrazor KLDivergence, T=1)': (lambda: kd(s_logits, t_logits), [s_logits]),
        'NC (all 4 terms)': (lambda: nc(s_feat, labels, weights, fc_cls), [s_feat, fc_cls]),
        'iCD-RoI (by image)': (lambda: by_image(s_logits, t_logits, rois), [s_logits]),
        'iCD-RoI (by image+level)': (lambda: by_level(s_logits, t_logits, rois), [s_logits]),
        'iCD-RoI block mask (ref.)': (lambda: icd_grouped_block_mask(s_logits, t_logits, images_of), [s_logits]),
    }


def classification_cases(device: torch.device) -> Dict[str, Tuple[Callable, List[torch.Tensor]]]:
    batch, dim, num_classes, regions = 128, 2048, 1000, 21
    s_feat = torch.randn(batch, dim, device=device, requires_grad=True)
    t_feat = torch.randn(batch, dim, device=device)
    labels = torch.randint(0, num_classes, (batch, ), device=device)
    s_logits = torch.randn(batch, num_classes, device=device, requires_grad=True)
    t_logits = torch.randn(batch, num_classes, device=device)
    s_regions = torch.randn(batch, num_classes, regions, device=device, requires_grad=True)
    t_regions = torch.randn(batch, num_classes, regions, device=device)
    fc = torch.randn(num_classes, dim, device=device, requires_grad=True)
    means = class_means(num_classes, dim, device)
    nd, nc = NDLoss(), NCLoss(nc3_weight=1.0)
    nd.bind_class_means(means)
    nc.bind_class_means(means)
    kd, icd = MODELS.build(dict(type='mmrazor.KLDivergence', tau=4.0)), ICDLoss()
    return {
        'ND': (lambda: nd(s_feat, t_feat, labels), [s_feat]),
        'KD (mmrazor KLDivergence, T=4)': (lambda: kd(s_logits, t_logits), [s_logits]),
        'NC (all 4 terms)': (lambda: nc(s_feat, labels, None, fc), [s_feat, fc]),
        'iCD (scales 1,2,4)': (lambda: icd(s_regions, t_regions), [s_regions]),
    }


def step(fn: Callable, leaves: List[torch.Tensor], device: torch.device) -> None:
    for leaf in leaves:
        leaf.grad = None
    fn().backward()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def peak_memory(fn: Callable, leaves: List[torch.Tensor], device: torch.device) -> float:
    """Peak bytes allocated by one forward + backward above the allocation before it."""
    for leaf in leaves:
        leaf.grad = None
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(fn, leaves, device)
        return torch.cuda.max_memory_allocated(device) - base
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(fn, leaves, device)
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def benchmark(fn: Callable, leaves: List[torch.Tensor], device: torch.device, repeats: int,
              warmup: int) -> Tuple[float, float]:
    for _ in range(warmup):
        step(fn, leaves, device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(fn, leaves, device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), peak_memory(fn, leaves, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto',
                        help="'auto': CPU, then CUDA when available")
    parser.add_argument('--repeats', type=int, default=10, help='timed runs per loss (median reported)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs per loss')
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads (torch.set_num_threads); 1 gives steadier numbers on a shared machine')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available')
    devices = [args.device] if args.device != 'auto' else ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])

    header = f'{"size":<15} {"device":<7} {"loss":<32} {"fwd+bwd ms":>11} {"peak MiB":>9}'
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads, median of {args.repeats} runs '
          f'after {args.warmup} warm-up; peak memory: CUDA max_memory_allocated, CPU torch.profiler '
          'allocation sum (op granularity), both above the pre-call allocation')
    print(header)
    print('-' * len(header))
    for name in devices:
        device = torch.device(name)
        for size, cases in (('det 2x512 RoIs', detection_cases), ('cls B=128', classification_cases)):
            torch.manual_seed(args.seed)
            for loss, (fn, leaves) in cases(device).items():
                ms, peak = benchmark(fn, leaves, device, args.repeats, args.warmup)
                print(f'{size:<15} {name:<7} {loss:<32} {ms:>11.2f} {peak / 2**20:>9.1f}')


if __name__ == '__main__':
    main()
