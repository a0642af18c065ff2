"""Fills the teacher class means of an mmkd distillation algorithm before training starts."""
import copy
import math
import os.path as osp
import time
from typing import Optional

import torch
from mmengine.dist import all_reduce, broadcast_object_list, get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmkd.registry import HOOKS
from mmkd.structures.class_means import checkpoint_identity


@HOOKS.register_module()
class ClassMeansHook(Hook):
    """Makes sure ``model.class_means`` (a :class:`~mmkd.structures.ClassMeans`) is filled before training.

    In ``before_train`` (which mmengine calls after ``load_from``/``--resume`` has restored the checkpoint), after
    refusing a teacher without trained weights (the algorithm's ``check_teacher_weights``: no ``teacher_ckpt``,
    none restored, no ``allow_random_teacher``), before any teacher pass:

    1. means already in the model (restored from a checkpoint): kept as they are;
    2. ``file`` given: loaded from it (shape checked against the model before training starts; a warning when
       the file names another teacher checkpoint than this run's, by SHA-256 of the file);
    3. EMA mode (``class_means=dict(..., momentum=m)`` in the algorithm): nothing to do, the algorithm updates
       them from the teacher's features at every training step;
    4. otherwise computed with one teacher pass over ``max_iters`` batches of the training set (default: one
       epoch, split across the ranks, whatever the sampler), using the algorithm's ``collect_class_features``
       (detection: teacher RoI features labelled with their assigned ground-truth class, background
       included), summed across ranks, and saved with the teacher checkpoint's identity to
       ``<log_dir>/class_means.pth`` (a fresh, timestamped folder of this run, so no earlier file is touched).

    In cases 1, 2 and 4 the coverage (classes with a mean) is logged: a sample of a class without a mean drops
    out of ND/NC for the whole run, so a warning is logged when more than ``missing_warn_ratio`` of the
    classes have none. [PROPOSAL]

    Args:
        file (str, optional): Precomputed class means (``tools/analysis/compute_class_means.py``).
        max_iters (int, optional): Batches per rank for the teacher pass. Defaults to one epoch over all ranks
            (``ceil(len(dataset) / (world_size * batch_size))`` per rank).
        log_interval (int): Progress log interval, in batches.
        missing_warn_ratio (float): Fraction of classes allowed to lack a mean without a warning (default 0:
            warn if any class lacks one).
    """

    priority = 'VERY_HIGH'  # before anything that could already train or evaluate the student

    def __init__(self, file: Optional[str] = None, max_iters: Optional[int] = None, log_interval: int = 50,
                 missing_warn_ratio: float = 0.) -> None:
        if file is not None and not osp.isfile(file):
            raise FileNotFoundError(f'ClassMeansHook: class-means file {file!r} does not exist. Compute it with '
                                    f'tools/analysis/compute_class_means.py CONFIG --out {file}, or drop `file` '
                                    f'to compute the means before training.')
        if not 0 <= missing_warn_ratio <= 1:
            raise ValueError(f'ClassMeansHook: missing_warn_ratio must lie in [0, 1], got {missing_warn_ratio}')
        self.file, self.max_iters, self.log_interval = file, max_iters, log_interval
        self.missing_warn_ratio = missing_warn_ratio

    def before_train(self, runner: Runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        class_means = getattr(model, 'class_means', None)
        if class_means is None:
            raise ValueError('ClassMeansHook needs an mmkd distillation algorithm configured with '
                             '`class_means=dict()` (model config); the model has none.')
        if hasattr(model, 'check_teacher_weights'):  # whatever the means' source: a file, EMA or the pass
            model.check_teacher_weights()
        teacher = checkpoint_identity(getattr(model, 'teacher_ckpt', None))
        if class_means.initialized:
            runner.logger.info('ClassMeansHook: class means restored from the checkpoint.')
        elif self.file is not None:
            meta = class_means.load(self.file)
            runner.logger.info(f'ClassMeansHook: loaded class means from {self.file} ({meta}).')
            self._check_teacher(meta, teacher, runner)
        elif class_means.momentum is not None:
            runner.logger.info('ClassMeansHook: class means are estimated online (EMA) during training.')
            return
        else:
            compute_class_means(model, runner.cfg.train_dataloader, self.max_iters, runner, self.log_interval)
            if is_main_process():
                path = osp.join(runner.log_dir, 'class_means.pth')
                class_means.save(path, meta=dict(config=runner.cfg.filename, **teacher))
                runner.logger.info(f'ClassMeansHook: saved class means to {path}.')
        self._log_coverage(class_means, runner)

    def _log_coverage(self, class_means, runner: Runner) -> None:
        missing = int((~class_means.valid).sum())
        text = f'ClassMeansHook: class means cover {class_means.coverage()}.'
        if missing > self.missing_warn_ratio * class_means.num_classes:
            runner.logger.warning(
                f'{text} Samples of a class without a mean are left out of the losses that use the class means '
                f'(ND, NC) for the whole run: make the teacher pass see every class (more max_iters, or the full '
                f'training set), or raise missing_warn_ratio if they are meant to be absent.')
        else:
            runner.logger.info(text)

    def _check_teacher(self, meta: dict, teacher: dict, runner: Runner) -> None:
        """Warn when the file's class means were computed for another teacher checkpoint than this run's."""
        theirs, ours = meta.get('teacher_sha256'), teacher['teacher_sha256']
        # the file's contents when both are known, else the path as given (None: no teacher_ckpt / unknown)
        same = theirs == ours if theirs and ours else meta.get('teacher_ckpt') == teacher['teacher_ckpt']
        if not same:
            runner.logger.warning(
                f'ClassMeansHook: the class means in {self.file} were computed for teacher checkpoint '
                f'{meta.get("teacher_ckpt")!r} (sha256 {theirs}), but this run\'s teacher is '
                f'{teacher["teacher_ckpt"]!r} (sha256 {ours}): the losses would pull the student towards another '
                f'teacher\'s class centres. Recompute them with tools/analysis/compute_class_means.py CONFIG '
                f'--out FILE for this teacher, or drop `file` to compute them before training.')


@torch.no_grad()
def compute_class_means(model, dataloader_cfg, max_iters: Optional[int], runner: Runner,
                        log_interval: int = 50) -> None:
    """One teacher pass over the training data into ``model.class_means``, all-reduced across ranks.

    The pass uses its own dataloader (built from a copy of ``dataloader_cfg``, without persistent workers), so
    the training loop's data order and iterator are untouched. By default it covers the dataset once over all
    ranks: ``ceil(len(dataset) / (world_size * batch_size))`` batches per rank (an ``InfiniteSampler``'s length
    is the whole dataset on every rank, which would make each rank do a whole epoch).

    The pass accumulates into a copy: ``model.class_means`` is replaced only when the pass has succeeded, and
    stays as it was when it stops.

    Raises:
        FloatingPointError: the teacher's features are not finite (a NaN/Inf in its weights), on any rank: every
            batch ends with one all-reduce of a per-rank flag, so every rank raises, in the same batch, the same
            error (that of the first rank that saw the values), instead of the others waiting in the next
            collective. Nothing is written: neither the model's class means nor a file.
    """
    if hasattr(model, 'check_teacher_weights'):  # no pass over a random teacher (tools/analysis/compute_class_means.py)
        model.check_teacher_weights()
    cfg = copy.deepcopy(dataloader_cfg)
    cfg['persistent_workers'] = False
    dataloader = Runner.build_dataloader(cfg, seed=runner.seed)
    batch_size = getattr(dataloader.batch_sampler, 'batch_size', None) or dataloader.batch_size or 1
    epoch = math.ceil(len(dataloader.dataset) / (get_world_size() * batch_size))
    total = min(epoch if max_iters is None else max_iters, len(dataloader))
    class_means = copy.deepcopy(model.class_means)  # the model's means change only once the pass has succeeded
    class_means.reset()
    was_training = model.training
    model.eval()
    start = time.time()
    try:
        for i, data_batch in enumerate(dataloader):
            if i >= total:
                break
            data = model.data_preprocessor(data_batch, training=True)
            feats, labels = model.collect_class_features(data['inputs'], data['data_samples'])
            _stop_together_unless_finite(feats, i, model)
            class_means.update(feats, labels)
            if (i + 1) % log_interval == 0 or i + 1 == total:
                runner.logger.info(f'ClassMeansHook: teacher pass {i + 1}/{total} batches '
                                   f'({time.time() - start:.0f}s)')
        class_means.all_reduce()
    finally:
        model.train(was_training)
    if not class_means.initialized:
        raise RuntimeError('ClassMeansHook: the teacher pass produced no features; check the training set.')
    model.class_means.load_state_dict(class_means.state_dict())


def _stop_together_unless_finite(feats: torch.Tensor, batch: int, model) -> None:
    """Raise the same ``FloatingPointError`` on every rank if the teacher features of this batch are not finite
    on any rank (one all-reduce of a ``[world_size]`` flag when distributed, one host sync)."""
    world_size, rank = get_world_size(), get_rank()
    flags = torch.zeros(world_size, device=feats.device)
    flags[rank] = (~torch.isfinite(feats.detach().sum(dtype=torch.float32))).float()
    if world_size > 1:
        all_reduce(flags, op='max')
    bad_ranks = [r for r, bad in enumerate(flags.tolist()) if bad]
    if not bad_ranks:
        return
    message = [None]
    if rank in bad_ranks:
        message = [f'ClassMeansHook: the teacher\'s features in batch {batch + 1} of the class-means pass are not '
                   f'finite ({int(torch.isnan(feats).sum())} NaN, {int(torch.isinf(feats).sum())} Inf of '
                   f'{feats.numel()} values of the {list(feats.shape)} features from '
                   f'{type(model).__name__}.collect_class_features): the teacher\'s weights '
                   f'({getattr(model, "teacher_ckpt", None)}) hold a NaN/Inf, or its activations overflow.']
    if world_size > 1:
        broadcast_object_list(message, src=bad_ranks[0])
        message[0] += (f' (Seen on rank{"s" if len(bad_ranks) > 1 else ""} {", ".join(map(str, bad_ranks))} of '
                       f'{world_size}; the details are rank {bad_ranks[0]}\'s; every rank stopped in this batch.)')
    raise FloatingPointError(message[0] + ' Nothing was written (the model\'s class means are unchanged, no file).')
