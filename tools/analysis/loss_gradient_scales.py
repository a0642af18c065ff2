"""Per loss term of an mmkd distillation config: its value and the gradient it puts on the student.

    python tools/analysis/loss_gradient_scales.py CONFIG [--checkpoint CKPT] [--batches N] [--epoch E]
        [--class-means-iters M] [--seed S] [--json OUT] [--cfg-options KEY=VALUE ...]

Builds the config's distillation algorithm as ``tools/train.py`` would (teacher from ``teacher_ckpt``, student
initialised by ``init_weights``, or restored from ``--checkpoint``: a checkpoint of the algorithm, e.g. a
distillation run's ``epoch_N.pth``, or of the student classifier alone, e.g. a baseline run), fills the teacher
class means if a loss reads them (one teacher pass over ``--class-means-iters`` training batches, default one
epoch, as ``ClassMeansHook``), then runs ``--batches`` training batches **without updating the weights** and, for
every loss term, reports

* its value as it enters the total loss (loss weights, and a ``loss_warmup`` factor at ``--epoch``, applied);
* the L2 norm of the gradient it induces on the student's backbone, head (and distillation connectors, if any);
* the ratio of those norms to the task loss's (the sum of the student's own losses, as weighted in the config);
* the cosine between its gradient and the task loss's, over all student parameters.

The terms are the student's own losses (``student.*``), every distillation loss (``distill.*``) and, for a loss
with a ``loss_terms`` method (``NCLoss``), each of its weighted sub-terms (``distill.loss_nc/loss_nc2``, ...;
they sum to the loss). The sub-terms are evaluated on the very inputs the loss received in the step (captured
with a forward pre-hook, so a connector is not run twice). Values are means over the batches; the ratio and cosine
columns are means of the per-batch values. ``--json`` also keeps every batch.

Nothing is written under the repository: the runner's work dir is a temporary folder (``--work-dir`` to keep it).
"""
import argparse
import copy
import json
import math
import os.path as osp
import shlex
import shutil
import sys
import tempfile
import time
from collections import OrderedDict
from typing import Dict, List, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mmkd  # noqa: E402,F401  (first: compatibility patches, registration)
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.runner.checkpoint import CheckpointLoader  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from mmkd.engine.hooks.class_means_hook import compute_class_means  # noqa: E402

TASK = 'task'
COLUMNS = ('loss', 'grad_backbone', 'grad_head', 'grad_connectors', 'ratio_backbone', 'ratio_head', 'cos_task')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='an mmkd distillation config (ClsDistill or RoIDistill)')
    parser.add_argument('--checkpoint', help='algorithm or student checkpoint to measure at (default: the '
                        'student as initialised)')
    parser.add_argument('--batches', type=int, default=4, help='training batches to average over')
    parser.add_argument('--epoch', type=int, help='epoch seen by loss_warmup (default: the checkpoint\'s, else 0; '
                        'an iteration warm-up sees the checkpoint\'s iteration, else 0)')
    parser.add_argument('--class-means-iters', type=int,
                        help='batches of the teacher pass that fills the class means (default: one epoch)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the weights, the data order and augmentation')
    parser.add_argument('--json', help='also write the results (with every batch) to this file')
    parser.add_argument('--work-dir', help='runner work dir (default: a temporary folder, removed at the end)')
    parser.add_argument('--verbose', action='store_true', help='keep the runner\'s INFO log')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    args = parser.parse_args(argv)
    for name in ('batches', 'class_means_iters'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.epoch is not None and args.epoch < 0:
        parser.error('--epoch must be >= 0')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'--checkpoint {args.checkpoint!r} does not exist')
    return args


# ---------------------------------------------------------------------------------------------------- model
def build_runner(args: argparse.Namespace, work_dir: str) -> Runner:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = work_dir
    cfg.custom_hooks = []  # the class means are filled below; nothing trains
    cfg.load_from, cfg.resume = None, False
    cfg.randomness = dict(seed=args.seed)
    cfg.launcher = 'none'
    # mmengine names the visualizer and logger after the experiment (a timestamp in seconds by default) and reuses
    # an existing instance of that name: two calls in one second would write into the first call's deleted dir
    cfg.experiment_name = f'loss_gradient_scales_{time.time_ns()}'
    if not args.verbose:
        cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    model = unwrap(runner.model)
    if not (hasattr(model, 'distiller') and hasattr(model, 'student') and hasattr(model, 'teacher')):
        sys.exit(f'{args.config} is not a distillation config: its model is a {type(model).__name__}, which has no '
                 'student, teacher and distiller (use an mmkd ClsDistill / RoIDistill config).')
    return runner


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def load_student(model: nn.Module, path: str) -> dict:
    """Load the student (and class means, if saved) from an algorithm or a student checkpoint; return its
    ``meta`` (``epoch`` and ``iter`` of the run that saved it, when recorded)."""
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    prefix = 'architecture.'
    if any(k.startswith(prefix) for k in state):  # a checkpoint of the whole algorithm
        student = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        means = {k[len('class_means.'):]: v for k, v in state.items() if k.startswith('class_means.')}
        if means and getattr(model, 'class_means', None) is not None:
            model.class_means.load_state_dict(means)
    else:  # the student classifier / detector alone
        student = dict(state)
    missing, unexpected = model.student.load_state_dict(student, strict=False)
    if missing or unexpected:
        sys.exit(f'{path} does not fit the config\'s student: missing {sorted(missing)[:5]}, unexpected '
                 f'{sorted(unexpected)[:5]} (first 5 of each). Pass a checkpoint of this config (or of its student '
                 'architecture trained alone).')
    return ckpt.get('meta') or {}


def parameter_groups(model: nn.Module) -> Dict[str, List[nn.Parameter]]:
    """Trainable student parameters by part: backbone, head (everything else of the student) and connectors."""
    student = model.student
    backbone = [p for p in student.backbone.parameters() if p.requires_grad]
    seen = {id(p) for p in backbone}
    head = [p for p in student.parameters() if p.requires_grad and id(p) not in seen]
    connectors = [p for p in model.distiller.connectors.parameters() if p.requires_grad]
    return OrderedDict(backbone=backbone, head=head, connectors=connectors)


class LossInputs:
    """Captures the keyword arguments each distillation loss module is called with (forward pre-hooks)."""

    def __init__(self, losses: nn.ModuleDict) -> None:
        self.inputs: Dict[str, dict] = {}
        self.handles = [
            module.register_forward_pre_hook(self._hook(name), with_kwargs=True) for name, module in losses.items()]

    def _hook(self, name: str):
        def hook(module, args, kwargs):
            self.inputs[name] = dict(kwargs)
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


# ---------------------------------------------------------------------------------------------------- measuring
def loss_terms(model: nn.Module, losses: Dict[str, Tensor], captured: Dict[str, dict],
               epoch: int) -> 'OrderedDict[str, Tensor]':
    """The terms of one step, by name: the student's losses, their sum ``task``, every distillation loss with its
    sub-terms (for modules with ``loss_terms``) and ``distill (sum)``. Entries of ``losses`` that are not losses
    (mmengine's ``parse_losses`` keeps only keys containing ``loss``) are skipped."""
    terms = OrderedDict()
    student = [(k, v) for k, v in losses.items() if k.startswith('student.') and 'loss' in k]
    for key, value in student:
        terms[key] = total(value)
    terms[TASK] = sum(terms[k] for k, _ in student)
    distill = [(k, v) for k, v in losses.items() if k.startswith('distill.') and 'loss' in k]
    warmup = model.warmup_factors(epoch=epoch) if hasattr(model, 'warmup_factors') else {}
    for key, value in distill:
        terms[key] = total(value)
        name = key[len('distill.'):]
        module = model.distiller.distill_losses[name] if name in model.distiller.distill_losses else None
        if module is not None and hasattr(module, 'loss_terms') and name in captured:
            factor = warmup.get(name, 1.0)
            parts = module.loss_terms(**captured[name])
            for part, part_value in parts.items():
                terms[f'{key}/{part}'] = factor * part_value
            parts_sum = sum(factor * v for v in parts.values())
            if not torch.allclose(parts_sum.detach(), terms[key].detach(), rtol=1e-4, atol=1e-6):
                raise RuntimeError(f'{name}: its loss_terms sum to {float(parts_sum):.6g}, but the step used '
                                   f'{float(terms[key]):.6g}; the sub-terms cannot be attributed')
    if distill:
        terms['distill (sum)'] = sum(terms[k] for k, _ in distill)
    return terms


def total(value) -> Tensor:
    """A loss entry as mmengine's ``parse_losses`` sums it (a tensor, or a list of tensors)."""
    if isinstance(value, Tensor):
        return value.mean()
    return sum(v.mean() for v in value)


def gradients(value: Tensor, params: Sequence[nn.Parameter]) -> List[Tensor]:
    """d value / d params (zeros for parameters it does not reach); the graph is kept."""
    if not value.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def measure_terms(terms: 'OrderedDict[str, Tensor]', groups: Dict[str, List[nn.Parameter]]) -> Dict[str, dict]:
    """Per term: value, gradient norm per parameter group, ratio to the ``task`` term's norm per group (None when
    that is 0) and cosine with the ``task`` gradient over all the groups (None when either gradient is 0)."""
    params = [p for group in groups.values() for p in group]
    bounds, start = {}, 0
    for name, group in groups.items():
        bounds[name] = (start, start + len(group))
        start += len(group)

    def norms(grads):
        return {name: math.sqrt(sum(float(g.pow(2).sum()) for g in grads[a:b])) for name, (a, b) in bounds.items()}

    task_grads = gradients(terms[TASK], params)
    task_norms = norms(task_grads)
    task_all = math.sqrt(sum(v**2 for v in task_norms.values()))
    out = {}
    for name, value in terms.items():
        grads = task_grads if name == TASK else gradients(value, params)
        grad_norms = norms(grads)
        norm_all = math.sqrt(sum(v**2 for v in grad_norms.values()))
        dot = sum(float((g * t).sum()) for g, t in zip(grads, task_grads))
        row = dict(loss=float(value.detach()))
        for group, norm in grad_norms.items():
            row[f'grad_{group}'] = norm
            row[f'ratio_{group}'] = norm / task_norms[group] if task_norms[group] > 0 else None
        row['cos_task'] = dot / (norm_all * task_all) if norm_all > 0 and task_all > 0 else None
        out[name] = row
    return out


def feature_norms(model: nn.Module) -> Dict[str, float]:
    """Mean L2 norm of the recorded penultimate features (``feat`` recorders), when the algorithm has them."""
    out = {}
    for side, manager in (('student', model.distiller.student_recorders),
                          ('teacher', model.distiller.teacher_recorders)):
        recorder = manager.recorders.get('feat')
        try:
            feat = recorder.get_record_data(0) if recorder is not None else None
        except (AssertionError, IndexError, RuntimeError):  # not recorded in this step (teacher not run)
            feat = None
        if isinstance(feat, Tensor) and feat.dim() == 2 and feat.numel():
            out[f'{side}_feat_norm'] = float(feat.detach().float().norm(dim=1).mean())
    return out


@torch.no_grad()
def teacher_reference(model: nn.Module, inputs: Tensor, captured: Dict[str, dict], epoch: int) -> Dict[str, float]:
    """The distillation losses that read a ``student_feat``, evaluated with the teacher's own penultimate feature of
    the same images in its place (same weights and warm-up; sub-terms too): what a student that reproduced the
    teacher's features exactly would score. Only where the shapes match (classification, equal widths or a
    connector to the teacher's width)."""
    readers = {name: kwargs for name, kwargs in captured.items() if isinstance(kwargs.get('student_feat'), Tensor)}
    if not readers or not hasattr(model.teacher, 'extract_feat'):
        return {}
    teacher_inputs = getattr(model, 'teacher_inputs', lambda x: x)(inputs)
    t_feat = model.teacher.extract_feat(teacher_inputs)
    warmup = model.warmup_factors(epoch=epoch) if hasattr(model, 'warmup_factors') else {}
    out = {}
    for name, kwargs in readers.items():
        if not isinstance(t_feat, Tensor) or t_feat.shape != kwargs['student_feat'].shape:
            continue
        module, factor = model.distiller.distill_losses[name], warmup.get(name, 1.0)
        kwargs = dict(kwargs, student_feat=t_feat)
        out[f'distill.{name}'] = factor * float(total(module(**kwargs)))
        if hasattr(module, 'loss_terms'):
            for part, value in module.loss_terms(**kwargs).items():
                out[f'distill.{name}/{part}'] = factor * float(value)
    return out


def measure(model: nn.Module, dataloader, batches: int, epoch: int) -> List[dict]:
    """Per batch: the terms' measurements and the feature norms. Weights are not updated."""
    groups = parameter_groups(model)
    capture = LossInputs(model.distiller.distill_losses)
    model.train()
    results = []
    try:
        for i, data_batch in enumerate(dataloader):
            if i >= batches:
                break
            capture.inputs.clear()
            data = model.data_preprocessor(data_batch, training=True)
            losses = model.loss(data['inputs'], data['data_samples'])
            terms = loss_terms(model, losses, capture.inputs, epoch)
            results.append(dict(terms=measure_terms(terms, groups), **feature_norms(model),
                                teacher_reference=teacher_reference(model, data['inputs'], capture.inputs, epoch)))
            model.zero_grad(set_to_none=True)
    finally:
        capture.remove()
    if len(results) < batches:
        print(f'note: the training set gave only {len(results)} batches', file=sys.stderr)
    return results


def summarise(per_batch: List[dict]) -> dict:
    """Means over batches (ratios and cosines: mean of the per-batch values, over the batches where defined)."""
    summary = OrderedDict()
    for name in per_batch[0]['terms']:
        row = {}
        for column in per_batch[0]['terms'][name]:
            values = [b['terms'][name][column] for b in per_batch if b['terms'][name][column] is not None]
            row[column] = sum(values) / len(values) if values else None
        summary[name] = row
    extras = {k: sum(b[k] for b in per_batch) / len(per_batch) for k in per_batch[0]
              if k not in ('terms', 'teacher_reference')}
    reference = {k: sum(b['teacher_reference'][k] for b in per_batch) / len(per_batch)
                 for k in per_batch[0]['teacher_reference']}
    return dict(terms=summary, teacher_reference=reference, **extras)


def fmt(x, spec: str = '.3g') -> str:
    return '-' if x is None else format(x, spec)


def format_table(summary: dict, has_connectors: bool) -> str:
    columns = [c for c in COLUMNS if has_connectors or c != 'grad_connectors']
    names = list(summary['terms'])
    width = max(len(n) for n in names) + 2
    lines = [f'{"term":<{width}}' + ''.join(f'{c:>16}' for c in columns)]
    for name in names:
        row = summary['terms'][name]
        lines.append(f'{name:<{width}}' + ''.join(f'{fmt(row.get(c)):>16}' for c in columns))
    for key in ('student_feat_norm', 'teacher_feat_norm'):
        if key in summary:
            lines.append(f'{key}: {summary[key]:.4g}')
    if summary.get('teacher_reference'):
        lines.append('the same losses with the teacher\'s own feature as student_feat (a student that copied it):')
        lines += [f'  {name:<{width}}{value:>14.3g}' for name, value in summary['teacher_reference'].items()]
    return '\n'.join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='loss_gradient_scales_')
    try:
        runner = build_runner(args, work_dir)
        model = unwrap(runner.model)
        model.init_weights()
        meta = load_student(model, args.checkpoint) if args.checkpoint else {}
        epoch = args.epoch if args.epoch is not None else (meta.get('epoch') or 0)
        runner.message_hub.update_info('epoch', epoch)  # what loss_warmup reads, as in a training step
        runner.message_hub.update_info('iter', meta.get('iter') or 0)
        class_means = getattr(model, 'class_means', None)
        if class_means is not None and not class_means.initialized and class_means.momentum is None:
            compute_class_means(model, runner.cfg.train_dataloader, args.class_means_iters, runner)
        loader_cfg = copy.deepcopy(runner.cfg.train_dataloader)
        loader_cfg['persistent_workers'] = False
        dataloader = Runner.build_dataloader(loader_cfg, seed=args.seed)
        per_batch = measure(model, dataloader, args.batches, epoch)
    finally:
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    summary = summarise(per_batch)
    has_connectors = any(p.requires_grad for p in model.distiller.connectors.parameters())
    command = shlex.join([osp.relpath(sys.executable), 'tools/analysis/loss_gradient_scales.py',
                          *(sys.argv[1:] if argv is None else argv)])
    print(f'{args.config}: {len(per_batch)} batches, epoch {epoch}, checkpoint {args.checkpoint or "none (init)"}, '
          f'teacher {runner.cfg.model.get("teacher_ckpt") or "none (random)"}')
    print(format_table(summary, has_connectors))
    result = dict(config=args.config, checkpoint=args.checkpoint, teacher_ckpt=runner.cfg.model.get('teacher_ckpt'),
                  batches=len(per_batch), epoch=epoch, seed=args.seed, command=command, summary=summary,
                  per_batch=per_batch)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
