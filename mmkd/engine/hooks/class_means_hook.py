"""Fills the teacher class means of an mmkd distillation algorithm before training starts."""
import copy
import os.path as osp
import time
from typing import Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmkd.registry import HOOKS


@HOOKS.register_module()
class ClassMeansHook(Hook):
    """Makes sure ``model.class_means`` (a :class:`~mmkd.structures.ClassMeans`) is filled before training.

    In ``before_train`` (which mmengine calls after ``load_from``/``--resume`` has restored the checkpoint):

    1. means already in the model (restored from a checkpoint): kept as they are;
    2. ``file`` given: loaded from it (shape checked against the model before training starts);
    3. EMA mode (``class_means=dict(..., momentum=m)`` in the algorithm): nothing to do, the algorithm updates
       them from the teacher's features at every training step;
    4. otherwise computed with one teacher pass over ``max_iters`` batches of the training set (default: one
       epoch), using the algorithm's ``collect_class_features`` (detection: teacher RoI features labelled with
       their assigned ground-truth class, background included), summed across ranks, and saved to
       ``<log_dir>/class_means.pth`` (a fresh, timestamped folder of this run, so no earlier file is touched).

    Args:
        file (str, optional): Precomputed class means (``tools/analysis/compute_class_means.py``).
        max_iters (int, optional): Batches per rank for the teacher pass. Defaults to one epoch.
        log_interval (int): Progress log interval, in batches.
    """

    priority = 'VERY_HIGH'  # before anything that could already train or evaluate the student

    def __init__(self, file: Optional[str] = None, max_iters: Optional[int] = None, log_interval: int = 50):
        if file is not None and not osp.isfile(file):
            raise FileNotFoundError(f'ClassMeansHook: class-means file {file!r} does not exist. Compute it with '
                                    f'tools/analysis/compute_class_means.py CONFIG --out {file}, or drop `file` '
                                    f'to compute the means before training.')
        self.file, self.max_iters, self.log_interval = file, max_iters, log_interval

    def before_train(self, runner: Runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        class_means = getattr(model, 'class_means', None)
        if class_means is None:
            raise ValueError('ClassMeansHook needs an mmkd distillation algorithm configured with '
                             '`class_means=dict()` (model config); the model has none.')
        if class_means.initialized:
            runner.logger.info('ClassMeansHook: class means restored from the checkpoint '
                               f'({int(class_means.valid.sum())}/{class_means.num_classes} classes).')
        elif self.file is not None:
            meta = class_means.load(self.file)
            runner.logger.info(f'ClassMeansHook: loaded class means from {self.file} ({meta}).')
        elif class_means.momentum is not None:
            runner.logger.info('ClassMeansHook: class means are estimated online (EMA) during training.')
        else:
            compute_class_means(model, runner.cfg.train_dataloader, self.max_iters, runner, self.log_interval)
            if is_main_process():
                path = osp.join(runner.log_dir, 'class_means.pth')
                class_means.save(path, meta=dict(config=runner.cfg.filename,
                                                 teacher_ckpt=getattr(runner.cfg.model, 'teacher_ckpt', None)))
                runner.logger.info(f'ClassMeansHook: saved class means to {path}.')


@torch.no_grad()
def compute_class_means(model, dataloader_cfg, max_iters: Optional[int], runner: Runner,
                        log_interval: int = 50) -> None:
    """One teacher pass over the training data into ``model.class_means``, all-reduced across ranks.

    The pass uses its own dataloader (built from a copy of ``dataloader_cfg``, without persistent workers), so
    the training loop's data order and iterator are untouched.
    """
    cfg = copy.deepcopy(dataloader_cfg)
    cfg['persistent_workers'] = False
    dataloader = Runner.build_dataloader(cfg, seed=runner.seed)
    total = len(dataloader) if max_iters is None else min(max_iters, len(dataloader))
    class_means = model.class_means
    class_means.reset()
    was_training = model.training
    model.eval()
    start = time.time()
    for i, data_batch in enumerate(dataloader):
        if i >= total:
            break
        data = model.data_preprocessor(data_batch, training=True)
        feats, labels = model.collect_class_features(data['inputs'], data['data_samples'])
        class_means.update(feats, labels)
        if (i + 1) % log_interval == 0 or i + 1 == total:
            runner.logger.info(f'ClassMeansHook: teacher pass {i + 1}/{total} batches '
                               f'({time.time() - start:.0f}s)')
    class_means.all_reduce()
    model.train(was_training)
    if not class_means.initialized:
        raise RuntimeError('ClassMeansHook: the teacher pass produced no features; check the training set.')
