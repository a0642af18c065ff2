# Copyright (c) OpenMMLab. All rights reserved.
"""Distil a teacher detector config into a student detector config with one of mmkd's methods (docs/distill.md).

    python tools/distill.py TEACHER_CONFIG STUDENT_CONFIG --teacher-ckpt CKPT --method METHOD \
        [--work-dir DIR] [--dry-run] [--teacher-preprocessing {convert,ignore}] [--launcher ...] \
        [--cfg-options k=v ...] [any tools/train.py option: --amp, --resume, --deterministic, ...]
    python tools/distill.py --method list

The configs are files or package configs (``mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py``). The tool checks
the pair (refusing, before building anything, what the method cannot distil), writes one readable distillation
config inheriting both configs to ``WORK_DIR/config/``, prints its path and trains it with tools/train.py;
``--dry-run`` builds the model (loading and checking the teacher checkpoint) instead of training. The logic is
``mmkd.apis.distill_config``; several processes: ``tools/dist_distill.sh``.
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmkd import compat  # noqa: E402,F401  (first: importing mmkd applies its patches and registers it)
from mmengine.config import DictAction  # noqa: E402

from mmkd.apis.distill_config import (DistillConfigError, build_model, describe_model, list_methods,  # noqa: E402
                                      make_distill_config)

TRAIN = osp.join(osp.dirname(osp.abspath(__file__)), 'train.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write, check and train the distillation config of a teacher and a student detector config.')
    parser.add_argument('teacher_config', nargs='?', help='teacher config file or pkg::path.py')
    parser.add_argument('student_config', nargs='?', help='student config file or pkg::path.py')
    parser.add_argument('--teacher-ckpt', help='the trained teacher\'s checkpoint (a file or a URL)')
    parser.add_argument('--method', required=True, help='distillation method; "list" prints them per detector kind')
    parser.add_argument('--work-dir', help='where the config and the run go (default ./work_dirs/<config name>)')
    parser.add_argument('--dry-run', action='store_true',
                        help='write the config and build its model (teacher checkpoint loaded), without training')
    parser.add_argument('--teacher-preprocessing', choices=['convert', 'ignore'],
                        help='when the teacher was trained with another normalisation than the student\'s: '
                        'convert (re-normalise the batch for the teacher) or ignore; without it such a pair is '
                        'refused')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='override settings of the written config, as tools/train.py does')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args, train_args = parser.parse_known_args(argv)
    if args.method != 'list' and not (args.teacher_config and args.student_config):
        parser.error('TEACHER_CONFIG and STUDENT_CONFIG are required (except with --method list)')
    return args, train_args


def parse_cfg_options(options):
    """``k=v`` strings as tools/train.py's ``--cfg-options`` reads them."""
    if not options:
        return None
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def load_train_tool():
    """tools/train.py as a module: the training is its ``main`` (nothing of it is copied here)."""
    spec = importlib.util.spec_from_file_location('mmkd_tools_train', TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    args, train_args = parse_args(argv)
    if args.method == 'list':
        print(list_methods())
        return 0
    rank0 = os.environ.get('RANK', '0') == '0'
    try:
        written, cfg = make_distill_config(args.teacher_config, args.student_config, args.teacher_ckpt, args.method,
                                           args.work_dir, parse_cfg_options(args.cfg_options),
                                           args.teacher_preprocessing)
    except DistillConfigError as err:
        print(f'tools/distill.py: refused: {err}', file=sys.stderr)
        return 2
    if rank0:
        print(f'Wrote the distillation config: {written.path} ({written.kind} detectors, mmkd.{written.algorithm}, '
              f'method {written.method.name})')
    if args.dry_run:
        model = build_model(cfg)
        print(f'Dry run: the model builds. {describe_model(model)}')
        print(f'Train it: python tools/train.py {written.path} --work-dir {written.work_dir}')
        return 0
    train = load_train_tool()
    train_argv = [TRAIN, written.path, '--work-dir', written.work_dir, '--launcher', args.launcher,
                  '--local-rank', str(args.local_rank)]
    if args.cfg_options:
        train_argv += ['--cfg-options', *args.cfg_options]
    saved = sys.argv
    sys.argv = train_argv + train_args
    try:
        train.main()
    finally:
        sys.argv = saved
    return 0


if __name__ == '__main__':
    sys.exit(main())
