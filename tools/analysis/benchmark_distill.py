"""Time one training step of mmkd's RoIDistill (or DenseDistill) against mmrazor's stock algorithm, in one process.

For a RoIDistill CONFIG and a synthetic batch (random images, a few random GT boxes each), the median wall
time over ``--repeats`` steps (after ``--warmup``) and the peak memory of one more step, for four modes:

* ``student``: the student detector alone, ``student.loss`` + backward + SGD step (its own losses only);
* ``teacher_fwd``: the teacher's ``extract_feat`` in eval mode under ``no_grad`` (no step), as RoIDistill runs
  it (BatchNorms folded and channels-last unless the config turns ``teacher_fuse_conv_bn`` /
  ``teacher_channels_last`` off);
* ``mmrazor``: mmrazor's ``SingleTeacherDistill`` with the config's distillation losses and RoIDistill's
  recorders (``ModuleInputs``/``ModuleOutputs`` on ``roi_head.bbox_head.fc_cls``, ``MethodOutputs`` on
  ``BBoxHead.get_targets``): the teacher runs its whole ``loss`` forward (RPN, its own RoI sampling, losses).
  Its RoIs are not the student's, and its sampler may keep a different number of them (too few proposals),
  so every per-RoI loss input is truncated to the smaller count (a view; negligible cost). Its teacher is the
  config's, as built (BatchNorms and all, NCHW);
* ``mmkd_nchw``: RoIDistill with its teacher as built (``teacher_fuse_conv_bn=False``,
  ``teacher_channels_last=False``): the gain of running the teacher's RoI head on the student's RoIs alone;
* ``mmkd``: the RoIDistill model itself (the teacher's RoI head runs on the student's RoIs).

All distillation modes are built with the same seed (same weights); losses that need class means (ND, NC)
get random valid means. The SGD step frees the gradients after every step. Peak memory is that of one more
step above what was allocated before it (weights, SGD momentum buffers and inputs; gradients and activations
count): CUDA ``max_memory_allocated``; CPU the peak of the running sum of the per-operator allocations / frees
that ``torch.profiler`` records with ``profile_memory=True`` (operator granularity: a temporary freed inside
one operator is not seen). Goals (docs/speed.md): mmkd <= 0.9 x mmrazor and mmkd <= 1.05 x (student +
teacher_fwd); for a config whose distiller has connectors (feature distillation such as ReviewKD / ReviewKD++),
mmkd <= 1.10 x (student + teacher_fwd). ``--modes`` times a subset (the ratios that need a mode left
out are not reported); ``--interleave`` times the modes in turns, one step of each per round, so that the load of a
shared machine hits every mode alike. ``--op-breakdown N`` profiles one more step of ``student``, ``teacher_fwd``
and ``mmkd`` each and lists the N operators whose self time grows most from the first two to ``mmkd`` (CPU: self
CPU time; CUDA: self device time): where distillation's extra time goes (e.g. ReviewKD's connector convolutions).
``--flops`` counts the floating-point operations of one more step of each timed mode (``torch.utils.flop_counter``:
matrix products and convolutions, forward and backward) and reports the same ratios of the counts: the compute a
method adds, which, unlike a time, does not depend on the machine's load.

**Dense configs** (``mmkd.DenseDistill``, one-stage detectors): the same modes, with

* ``teacher_fwd``: the teacher's ``extract_feat``, plus its head's forward when the method reads the head
  (CrossKD, LD, head recorders, EMA class means), without gradients, as DenseDistill runs them;
* ``mmrazor``: ``FpnTeacherDistill`` (``SingleTeacherDistill`` when a teacher recorder sits outside the backbone
  and neck) with the config's distiller. The records only DenseDistill computes that are the same every step of
  the fixed batch (``gt_bboxes``, ``img_shapes``, ``batch_input_shapes``, read by FGD) are given to the losses
  as fixed arguments. mmrazor has no counterpart of CrossKD, LD or the ``pos_*`` records (ND / iCD on dense
  heads): for those configs the mode is left out, with the reason in the output and the JSON
  (``mmrazor_counterpart``);
* no goals: the ratios are reported without a verdict.

Example::

    python tools/analysis/benchmark_distill.py configs/faster_rcnn_r101_r50_nd.py --img-size 1333 800 \\
        --json work_dirs/benchmark_distill.json
    # on a GPU, with the teacher left in NCHW:
    python tools/analysis/benchmark_distill.py configs/faster_rcnn_r101_r50_nd.py --device cuda \\
        --cfg-options model.teacher_channels_last=False
    # a dense config (GFL R101 -> R50, FGD), modes in turns:
    python tools/analysis/benchmark_distill.py configs/gfl_r101_r50_fgd.py --img-size 1333 800 --interleave
"""
import argparse
import copy
import json
import platform
import statistics
import time
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from mmkd.models.algorithms.roi_distill import STUDENT_ROI_RECORDERS, TEACHER_ROI_RECORDERS
from mmkd.registry import MODELS
from mmkd.structures import ClassMeans

GOALS = dict(mmkd_over_mmrazor=0.9, mmkd_over_student_plus_teacher_fwd=1.05)
#: the goal of mmkd / (student + teacher_fwd) for a distiller with connectors (ReviewKD's ABF on the FPN; docs/speed.md)
CONNECTOR_GOAL = 1.10
MODES = ('student', 'teacher_fwd', 'mmrazor', 'mmkd_nchw', 'mmkd')
ROI_TYPES = ('RoIDistill', 'mmkd.RoIDistill')
DENSE_TYPES = ('DenseDistill', 'mmkd.DenseDistill')
#: DenseDistill's records that depend on the batch only (fixed arguments of the stock mmrazor losses here)
DENSE_SAMPLE_RECORDS = ('gt_bboxes', 'img_shapes', 'batch_input_shapes')
RATIOS = dict(mmkd_over_mmrazor=('mmkd', ('mmrazor', )),
              mmkd_over_student_plus_teacher_fwd=('mmkd', ('student', 'teacher_fwd')),
              mmkd_nchw_over_mmrazor=('mmkd_nchw', ('mmrazor', )))


def is_dense(cfg: Config) -> bool:
    return cfg.model.get('type') in DENSE_TYPES


def goals_for(cfg: Config) -> Dict[str, float]:
    """The goals that apply to the config: a connector (trained feature transform) is extra student work. Dense
    configs have none (their ratios are reported without a verdict)."""
    if is_dense(cfg):
        return {}
    if cfg.model.distiller.get('connectors'):
        return dict(GOALS, mmkd_over_student_plus_teacher_fwd=CONNECTOR_GOAL)
    return dict(GOALS)


class CommonRows(nn.Module):
    """Calls ``loss`` with every tensor argument cut to the smallest first dimension among them."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, **kwargs):
        if not any(torch.is_tensor(v) for v in kwargs.values()):  # e.g. HCL's tuples of FPN maps: nothing per RoI
            return self.loss(**kwargs)
        rows = min(v.shape[0] for v in kwargs.values() if torch.is_tensor(v))
        return self.loss(**{k: v[:rows] if torch.is_tensor(v) else v for k, v in kwargs.items()})


class FixedRecords(nn.Module):
    """Calls ``loss`` with some arguments taken from ``values`` (filled once the batch exists): the records
    DenseDistill computes from the data samples, which a stock mmrazor distiller has no recorder for."""

    def __init__(self, loss: nn.Module, args: Dict[str, str], values: Dict[str, Any]) -> None:
        super().__init__()
        self.loss, self.args, self.values = loss, args, values

    def forward(self, **kwargs):
        return self.loss(**kwargs, **{arg: self.values[record] for arg, record in self.args.items()})


def stock_dense_config(mmkd_cfg: dict) -> Tuple[Optional[dict], Dict[str, Dict[str, str]], str]:
    """mmrazor's counterpart of a DenseDistill config: ``(config, fixed, description)`` with ``fixed`` the mapping
    arguments to bind to batch records per loss (:class:`FixedRecords`), or ``(None, {}, reason)`` when mmrazor
    has none."""
    methods = [key for key in ('crosskd', 'ld') if mmkd_cfg.get(key) is not None]
    if methods:
        return None, {}, f'none: mmrazor has no counterpart of {" / ".join(methods)} (head losses)'
    distiller = copy.deepcopy(mmkd_cfg['distiller'])
    recorders = {True: distiller.get('student_recorders') or {}, False: distiller.get('teacher_recorders') or {}}
    fixed: Dict[str, Dict[str, str]] = {}
    mappings = {}
    for loss_name, mapping in (distiller.get('loss_forward_mappings') or {}).items():
        kept = {}
        for arg, rec in mapping.items():
            name, from_student = rec['recorder'], bool(rec['from_student'])
            if name not in recorders[from_student]:
                if from_student and name in DENSE_SAMPLE_RECORDS:
                    fixed.setdefault(loss_name, {})[arg] = name
                    continue
                return None, {}, f'none: {loss_name} reads the record {name!r}, which only DenseDistill computes'
            kept[arg] = rec
        mappings[loss_name] = kept
    distiller['loss_forward_mappings'] = mappings
    teacher_sources = [str(r.get('source', '')) for r in recorders[False].values()]
    fpn_only = all(src.startswith(('backbone', 'neck')) for src in teacher_sources)
    algorithm = 'mmrazor.FpnTeacherDistill' if fpn_only else 'mmrazor.SingleTeacherDistill'
    cfg = dict(_scope_='mmkd', type=algorithm, architecture=mmkd_cfg['architecture'], teacher=mmkd_cfg['teacher'],
               distiller=distiller)
    return cfg, fixed, algorithm + (f' (fixed batch records for {sorted(fixed)})' if fixed else '')


def build_models(cfg: Config, seed: int) -> Tuple[nn.Module, nn.Module, Optional[nn.Module], str, Dict[str, Any]]:
    """The config's RoIDistill / DenseDistill (no teacher checkpoint), the same with its teacher as built (no
    BatchNorm folding, NCHW) and the stock mmrazor algorithm (None for a dense method mmrazor has no counterpart
    of), all with equal weights; the stock algorithm's description; the dict of batch records its losses read
    (:class:`FixedRecords`; fill it with :func:`sample_records`)."""
    mmkd_cfg = copy.deepcopy(cfg.model)
    mmkd_cfg.update(teacher_ckpt=None, allow_random_teacher=True)  # random weights are all a timing needs
    nchw_cfg = dict(copy.deepcopy(mmkd_cfg), teacher_fuse_conv_bn=False, teacher_channels_last=False)
    fixed: Dict[str, Dict[str, str]] = {}
    if is_dense(cfg):
        stock_cfg, fixed, stock_name = stock_dense_config(mmkd_cfg)
    else:
        distiller = copy.deepcopy(mmkd_cfg.distiller)
        for key, defaults in (('student_recorders', STUDENT_ROI_RECORDERS),
                              ('teacher_recorders', TEACHER_ROI_RECORDERS)):
            distiller[key] = {**defaults, **(distiller.get(key) or {})}
        stock_cfg = dict(_scope_='mmkd', type='mmrazor.SingleTeacherDistill', architecture=mmkd_cfg.architecture,
                         teacher=mmkd_cfg.teacher, distiller=distiller)
        stock_name = 'mmrazor.SingleTeacherDistill'
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(seed)
        model = MODELS.build(mmkd_cfg)
        torch.manual_seed(seed)
        nchw = MODELS.build(nchw_cfg)
        torch.manual_seed(seed)
        stock = MODELS.build(stock_cfg) if stock_cfg is not None else None
    records: Dict[str, Any] = {}
    if model.class_means is not None:  # every class (background included) gets a random valid mean
        model.class_means.update(torch.rand(model.class_means.num_classes, model.class_means.feat_dim),
                                 torch.arange(model.class_means.num_classes))
        nchw.class_means.load_state_dict(model.class_means.state_dict())
    if is_dense(cfg):  # the stock losses that read class means (ND, NC) need pos_* records: no stock then
        for name, args in fixed.items():
            stock.distiller.distill_losses[name] = FixedRecords(stock.distiller.distill_losses[name], args, records)
        return model, nchw, stock, stock_name, records
    if model.class_means is not None:
        stock.class_means = ClassMeans(*model.class_means_shape())  # a submodule: moves with stock.to()
        stock.class_means.load_state_dict(model.class_means.state_dict())
    for name, loss in list(stock.distiller.distill_losses.items()):
        if hasattr(loss, 'bind_class_means'):
            loss.bind_class_means(stock.class_means)
        stock.distiller.distill_losses[name] = CommonRows(loss)
    return model, nchw, stock, stock_name, records


def sample_records(samples) -> Dict[str, list]:
    """The batch records DenseDistill computes from the data samples (the same lists it gives its losses)."""
    return dict(gt_bboxes=[getattr(s.gt_instances.bboxes, 'tensor', s.gt_instances.bboxes) for s in samples],
                img_shapes=[tuple(s.metainfo['img_shape'][:2]) for s in samples],
                batch_input_shapes=[tuple(s.metainfo.get('batch_input_shape', s.metainfo['img_shape'])[:2])
                                    for s in samples])


def num_classes_of(detector: nn.Module) -> int:
    """The class count of a two-stage (``roi_head.bbox_head``) or one-stage (``bbox_head``) detector."""
    roi_head = getattr(detector, 'roi_head', None)
    return (roi_head.bbox_head if roi_head is not None else detector.bbox_head).num_classes


def synthetic_batch(model: nn.Module, batch_size: int, width: int, height: int):
    """``batch_size`` random images with 1-5 random GT boxes each, through the model's data preprocessor (which
    pads them and moves them to the model's device)."""
    num_classes = num_classes_of(model.student)
    images, samples = [], []
    for _ in range(batch_size):
        images.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8))
        num = int(torch.randint(1, 6, ()))
        xy = torch.rand(num, 2) * torch.tensor([width, height]) * 0.7
        wh = (0.05 + 0.25 * torch.rand(num, 2)) * torch.tensor([width, height])
        sample = DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width),
                                             scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                           labels=torch.randint(0, num_classes, (num, )))
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    return data['inputs'], data['data_samples']


def amp_optim_wrapper(optimizer: torch.optim.Optimizer, device: torch.device):
    """The optimizer wrapper ``tools/train.py --amp`` configures: mmengine's ``AmpOptimWrapper`` on CUDA (float16
    autocast, dynamic loss scaling), ``mmkd.CPUAmpOptimWrapper`` on the CPU (bfloat16 autocast)."""
    if device.type == 'cuda':
        from mmengine.optim import AmpOptimWrapper
        return AmpOptimWrapper(optimizer=optimizer, loss_scale='dynamic')
    from mmkd.engine.optim_wrappers import CPUAmpOptimWrapper
    return CPUAmpOptimWrapper(optimizer=optimizer)


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast type of :func:`amp_optim_wrapper` on ``device``."""
    return torch.float16 if device.type == 'cuda' else torch.bfloat16


def train_step(model: nn.Module, lr: float, amp_device: Optional[torch.device] = None) -> Callable:
    """One step: ``model.loss``, backward, SGD (momentum 0.9, as in the configs) on the trainable parameters; with
    ``amp_device``, through the mixed-precision wrapper of ``--amp`` (:func:`amp_optim_wrapper`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    if amp_device is not None:
        wrapper = amp_optim_wrapper(optimizer, amp_device)

        def amp_step(inputs, samples):
            with wrapper.optim_context(model):
                loss, _ = model.parse_losses(model.loss(inputs, samples))
            wrapper.update_params(loss)  # backward (scaled), step, zero_grad
        return amp_step

    def step(inputs, samples):
        loss, _ = model.parse_losses(model.loss(inputs, samples))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()  # gradients freed: the next step starts from weights + momentum buffers only
    return step


def synchronized(fn: Callable, device: torch.device) -> Callable:
    def run(*args):
        fn(*args)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
    return run


def peak_memory(fn: Callable, device: torch.device) -> float:
    """Peak bytes allocated by one call of ``fn`` above the allocation before it."""
    if device.type == 'cuda':
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        return torch.cuda.max_memory_allocated(device) - base
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def benchmark(fn: Callable, device: torch.device, warmup: int, repeats: int) -> Tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), peak_memory(fn, device)


def finite_check_seconds(model: nn.Module, inputs, samples, device: torch.device, repeats: int = 20) -> float:
    """Median time of RoIDistill's per-step finite check alone (``_check_finite``: one fused reduction over the
    teacher records and distillation losses, the multi-rank flag and its host sync) on one step's losses; it
    runs every ``finite_check_interval`` steps. Measured in isolation (synchronised before and after), so on a GPU
    it leaves out the overlap of CPU and GPU work that the sync interrupts in a real step."""
    with torch.no_grad():
        losses = model.loss(inputs, samples)
    times = []
    for _ in range(repeats):
        model._loss_calls = 0  # due, whatever the interval
        synchronized(lambda: None, device)()
        start = time.perf_counter()
        synchronized(model._check_finite, device)(losses)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def op_seconds(fn: Callable, device: torch.device) -> Dict[str, float]:
    """Self time per operator name of one call of ``fn`` (torch.profiler; on CUDA the device time)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities) as prof:
        fn()
    events = prof.key_averages()
    attr = 'self_cpu_time_total' if device.type != 'cuda' else \
        next(a for a in ('self_device_time_total', 'self_cuda_time_total') if hasattr(events[0], a))
    return {event.key: getattr(event, attr) / 1e6 for event in events}


def step_flops(fn: Callable) -> int:
    """Floating-point operations of one call of ``fn`` as ``torch.utils.flop_counter`` counts them: matrix products
    and convolutions, forward and backward (elementwise operations, norms and reductions are not counted). A count,
    not a time: the same on a loaded and an idle machine."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def op_breakdown(per_mode: Dict[str, Dict[str, float]], top: int) -> dict:
    """The operators whose self time grows most from ``student`` + ``teacher_fwd`` to ``mmkd`` (seconds), and the
    totals: what distillation adds beyond running both models."""
    base = {}
    for mode in ('student', 'teacher_fwd'):
        for op, sec in per_mode[mode].items():
            base[op] = base.get(op, 0.0) + sec
    extra = {op: per_mode['mmkd'].get(op, 0.0) - base.get(op, 0.0) for op in set(base) | set(per_mode['mmkd'])}
    ops = sorted(extra, key=lambda op: -extra[op])[:top]
    return dict(total_s={mode: sum(per_mode[mode].values()) for mode in ('student', 'teacher_fwd', 'mmkd')},
                extra_s=sum(extra.values()),
                ops=[dict(op=op, base_s=base.get(op, 0.0), mmkd_s=per_mode['mmkd'].get(op, 0.0), extra_s=extra[op])
                     for op in ops])


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='an mmkd RoIDistill or DenseDistill config')
    parser.add_argument('--img-size', type=int, nargs=2, default=[1333, 800], metavar=('W', 'H'))
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps per mode')
    parser.add_argument('--repeats', type=int, default=None, help='timed steps per mode (default: CPU 3, GPU 10)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--lr', type=float, default=1e-4, help='SGD lr (small: random weights stay finite)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--interleave', action='store_true',
                        help='time the modes in turns (one step of each per round) instead of one mode after the '
                             'other: on a shared machine, load changes then hit every mode alike')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES),
                        help='the modes to time (default: all); a ratio is reported when its modes are timed')
    parser.add_argument('--op-breakdown', type=int, default=0, metavar='N',
                        help='profile one more step of student, teacher_fwd and mmkd and list the N operators whose '
                             'self time grows most from the first two to mmkd (needs those three modes)')
    parser.add_argument('--flops', action='store_true',
                        help='also count the FLOPs of one more step of each timed mode (torch.utils.flop_counter: '
                             'matmuls and convolutions, forward and backward) and report the same ratios of the '
                             'counts: the compute distillation adds, whatever the load of the machine')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision as tools/train.py --amp: every training step through AmpOptimWrapper '
                             '(CUDA: float16, dynamic loss scaling) or mmkd.CPUAmpOptimWrapper (CPU: bfloat16), the '
                             'teacher forward under the same autocast')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    args = parser.parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available; use --device cpu')
    if min(args.img_size) < 32 or args.batch_size < 1 or args.repeats is not None and args.repeats < 1:
        parser.error('--img-size needs W, H >= 32, --batch-size and --repeats must be >= 1')
    if args.op_breakdown < 0 or args.op_breakdown and not {'student', 'teacher_fwd', 'mmkd'} <= set(args.modes):
        parser.error('--op-breakdown N takes N >= 1 and the modes student, teacher_fwd and mmkd')
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (10 if args.device == 'cuda' else 3)
    device = torch.device(args.device)

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.model.get('type') not in ROI_TYPES + DENSE_TYPES:
        raise ValueError(f'{args.config} builds a {cfg.model.get("type")!r}; this benchmark needs an mmkd '
                         f'RoIDistill config (e.g. configs/faster_rcnn_r101_r50_nd.py) or DenseDistill config '
                         f'(e.g. configs/gfl_r101_r50_pkd.py)')
    model, nchw, stock, stock_name, records = build_models(cfg, args.seed)
    for m in (model, nchw, stock):
        if m is not None:
            m.to(device).train()
    torch.manual_seed(args.seed)
    inputs, samples = synthetic_batch(model, args.batch_size, *args.img_size)
    records.update(sample_records(samples))
    dense_head = is_dense(cfg) and model._teacher_runs_head

    amp = device if args.amp else None

    @torch.no_grad()
    def teacher_fwd(batch_inputs, data_samples):  # the teacher is in eval mode (RoIDistill / DenseDistill.train)
        with torch.autocast(device.type, dtype=amp_dtype(device), enabled=args.amp):
            feats = model.teacher.extract_feat(model.teacher_inputs(batch_inputs))
            if dense_head:  # the head too, where DenseDistill runs it (CrossKD, LD, head records)
                model.t_head.forward_with_features([f.contiguous() for f in feats],
                                                   model.crosskd_cfg['k'] if model.crosskd_cfg else None)

    steps: Dict[str, Callable] = dict(
        student=lambda: train_step(model.student, args.lr, amp),
        teacher_fwd=lambda: teacher_fwd,
        mmrazor=lambda: train_step(stock, args.lr, amp),
        mmkd_nchw=lambda: train_step(nchw, args.lr, amp),
        mmkd=lambda: train_step(model, args.lr, amp))
    results = {}
    timed = [m for m in MODES if m in args.modes and (m != 'mmrazor' or stock is not None)]
    if args.interleave:
        fns = {m: synchronized(steps[m](), device) for m in timed}
        times: Dict[str, list] = {m: [] for m in timed}
        for round_ in range(args.warmup + repeats):
            for mode in timed:
                start = time.perf_counter()
                fns[mode](inputs, samples)
                if round_ >= args.warmup:
                    times[mode].append(time.perf_counter() - start)
        for mode in timed:
            peak = peak_memory(lambda: fns[mode](inputs, samples), device)
            results[mode] = dict(median_s=statistics.median(times[mode]), peak_mib=peak / 2**20)
    for mode in timed if not args.interleave else ():
        fn = synchronized(steps[mode](), device)
        seconds, peak = benchmark(lambda: fn(inputs, samples), device, args.warmup, repeats)
        results[mode] = dict(median_s=seconds, peak_mib=peak / 2**20)
    breakdown = None
    if args.op_breakdown:
        per_mode = {}
        for mode in ('student', 'teacher_fwd', 'mmkd'):
            fn = synchronized(steps[mode](), device)
            fn(inputs, samples)  # a fresh optimizer's first step (momentum buffers) is not profiled
            per_mode[mode] = op_seconds(lambda: fn(inputs, samples), device)
        breakdown = op_breakdown(per_mode, args.op_breakdown)
    flops = None
    if args.flops:
        flops = {}
        for mode in timed:  # no warm-up step: the optimizer's state changes no matmul or convolution count
            fn = steps[mode]()
            flops[mode] = step_flops(lambda: fn(inputs, samples))
    finite_check = None
    if 'mmkd' in results:
        check_s = finite_check_seconds(model, inputs, samples, device)
        finite_check = dict(median_s=check_s, share_of_mmkd_step=check_s / results['mmkd']['median_s'])
    ratios = {name: results[num]['median_s'] / sum(results[d]['median_s'] for d in den)
              for name, (num, den) in RATIOS.items() if num in results and all(d in results for d in den)}
    flop_ratios = None if flops is None else {
        name: flops[num] / sum(flops[d] for d in den) for name, (num, den) in RATIOS.items()
        if num in flops and all(d in flops for d in den) and all(flops[d] for d in den)}
    goals = goals_for(cfg)

    width, height = args.img_size
    teacher = dict(fused_batchnorms=not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                            for m in model.teacher.modules()),
                   channels_last=model.teacher_channels_last)
    info = dict(config=args.config, algorithm=type(model).__name__, mmrazor_counterpart=stock_name,
                device=args.device, interleave=args.interleave,
                amp=(('AmpOptimWrapper (float16, dynamic loss scale)' if device.type == 'cuda' else
                      'mmkd.CPUAmpOptimWrapper (bfloat16)') if args.amp else None),
                device_name=device_name(device), torch=torch.__version__,
                mmkd_teacher=teacher,
                threads=torch.get_num_threads(), img_size=[width, height], batch_size=args.batch_size,
                warmup=args.warmup, repeats=repeats,
                memory=('CUDA max_memory_allocated' if device.type == 'cuda' else
                        'CPU torch.profiler allocation sum (operator granularity)') + ', above the pre-step allocation')
    print(f'{args.config}: {args.batch_size} x {width}x{height} images on {info["device_name"]} ({args.device}), '
          f'torch {torch.__version__}, {info["threads"]} threads; median of {repeats} steps after {args.warmup} '
          f'warm-up; peak memory: {info["memory"]}; mmkd teacher: {teacher}'
          + (f'; amp: {info["amp"]}' if args.amp else ''))
    print(f'{info["algorithm"]}; mmrazor counterpart: {stock_name}')
    print(f'{"mode":<12} {"s/step":>9} {"peak MiB":>9}')
    for mode, res in results.items():
        print(f'{mode:<12} {res["median_s"]:>9.4f} {res["peak_mib"]:>9.1f}')
    for name, ratio in ratios.items():
        verdict = '' if name not in goals else \
            f'  (goal <= {goals[name]}: {"met" if ratio <= goals[name] else "NOT met"})'
        print(f'{name:<36} {ratio:.3f}{verdict}')
    if flops is not None:
        print('FLOPs of one step (torch.utils.flop_counter: matmuls and convolutions, forward and backward): '
              + ', '.join(f'{mode} {count / 1e9:.3f} G' for mode, count in flops.items()))
        for name, ratio in flop_ratios.items():
            print(f'{name + " (FLOPs)":<44} {ratio:.3f}')
    if breakdown is not None:
        totals = breakdown['total_s']
        print(f'operators, one profiled step each (self time, s): student {totals["student"]:.3f} + teacher_fwd '
              f'{totals["teacher_fwd"]:.3f} -> mmkd {totals["mmkd"]:.3f}, extra {breakdown["extra_s"]:.3f}')
        print(f'{"operator":<48} {"student+teacher":>15} {"mmkd":>9} {"extra":>9}')
        for row in breakdown['ops']:
            print(f'{row["op"][:48]:<48} {row["base_s"]:>15.3f} {row["mmkd_s"]:>9.3f} {row["extra_s"]:>9.3f}')
    if finite_check is not None:
        print(f'finite check (finite_check_interval=1: every step): {finite_check["median_s"] * 1e6:.0f} us, '
              f'{finite_check["share_of_mmkd_step"]:.4%} of the mmkd step')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(info, modes=results, ratios=ratios, goals=goals, finite_check=finite_check,
                           op_breakdown=breakdown, flops=flops, flop_ratios=flop_ratios), f, indent=2)


if __name__ == '__main__':
    main()
