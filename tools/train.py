# Copyright (c) OpenMMLab. All rights reserved.
"""Train a detector or a distillation algorithm: mmdet 3.3's ``tools/train.py``
with mmkd imported first and CPU-only distributed runs made possible."""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmkd import compat  # noqa: E402  (first: importing mmkd applies its patches and registers it)
from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (float16 with loss scaling on a GPU; bfloat16 '
        'autocast on a CPU: mmkd.CPUAmpOptimWrapper)')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='use deterministic algorithms only (randomness.deterministic=True: '
        'torch.use_deterministic_algorithms, cuDNN benchmark off): what GPU runs need to '
        'repeat at a fixed randomness.seed. On the CPU, runs at a fixed seed and thread '
        'count repeat bit for bit with or without it')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.run passes `--local-rank` (PyTorch >= 2.0).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)

    return args


def accelerator_available() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` can run here (it asserts one of these devices)."""
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


def refuse_random_teacher(cfg: Config) -> None:
    """Stop before anything is built when an mmkd distillation config would train against a randomly initialised
    teacher: no ``model.teacher_ckpt``, no ``load_from`` / ``resume`` (whose checkpoint may hold the teacher: the
    algorithm checks that when training starts) and no ``model.allow_random_teacher=True``."""
    model = cfg.get('model')
    if not isinstance(model, dict) or model.get('teacher') is None or model.get('teacher_ckpt') or \
            model.get('allow_random_teacher') or cfg.get('load_from') or cfg.get('resume'):
        return
    from mmkd.models.algorithms.base import TeacherStudentDistill
    from mmkd.registry import MODELS
    algorithm = model.get('type')
    if isinstance(algorithm, str):
        algorithm = MODELS.get(algorithm if '.' in algorithm else f'{model.get("_scope_", "mmkd")}.{algorithm}') \
            or MODELS.get(algorithm)
    if not (isinstance(algorithm, type) and issubclass(algorithm, TeacherStudentDistill)):
        return
    raise ValueError(
        f'{algorithm.__name__}: model.teacher_ckpt is not set, so the student would be trained to imitate a randomly '
        f'initialised teacher, and end up worse than trained alone. Set it to the trained teacher\'s checkpoint '
        f'(in the config, or --cfg-options model.teacher_ckpt=PATH), or --resume / load_from a checkpoint of this '
        f'distillation run (it holds the teacher). For a deliberate random-teacher run (tests, debugging) pass '
        f'--cfg-options model.allow_random_teacher=True.')


def main():
    args = parse_args()

    # Reduce the number of repeated compilations and improve
    # training speed.
    setup_cache_size_limit_of_dynamo()

    # load config
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        # update configs according to CLI args if args.work_dir is not None
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        # use config filename as default work_dir if cfg.work_dir is None
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    # enable automatic-mixed-precision training
    if args.amp is True:
        if accelerator_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
        else:  # mmengine's AmpOptimWrapper refuses the CPU; torch autocasts there to bfloat16 only
            cfg.optim_wrapper.type = 'mmkd.CPUAmpOptimWrapper'
            cfg.optim_wrapper.dtype = 'bfloat16'

    if args.deterministic:
        cfg.setdefault('randomness', ConfigDict()).deterministic = True
        # cuBLAS needs this for deterministic matrix products on CUDA >= 10.2 (ignored on the CPU)
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')

    # enable automatically scaling LR
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and \
                'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or '
                               '"auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your'
                               ' configuration file.')

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    refuse_random_teacher(cfg)
    compat.setup_cpu_distributed(cfg)

    # build the runner from config
    if 'runner_type' not in cfg:
        # build the default runner
        runner = Runner.from_cfg(cfg)
    else:
        # build customized runner from the registry
        # if 'runner_type' is set in the cfg
        runner = RUNNERS.build(cfg)

    # start training
    runner.train()
    compat.finish_distributed()


if __name__ == '__main__':
    main()
