# Copyright (c) OpenMMLab. All rights reserved.
"""Test (and evaluate) a detector: mmdet 3.3's ``tools/test.py`` with mmkd
imported first and CPU-only distributed runs made possible. A checkpoint
that does not fit the model under test (for a distillation config: its
student) is refused before the evaluation; a distillation config also takes
a plain checkpoint of its student."""
import argparse
import os
import os.path as osp
import sys
import warnings
from copy import deepcopy

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmkd import compat  # noqa: E402  (first: importing mmkd applies its patches and registers it)
from mmdet.engine.hooks.utils import trigger_visualization_hook  # noqa: E402
from mmdet.evaluation import DumpDetResults  # noqa: E402
from mmdet.registry import RUNNERS  # noqa: E402
from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.model import BaseTTAModel, is_model_wrapper  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.runner.checkpoint import _load_checkpoint  # noqa: E402

from mmkd.models.utils.checkpoint import (DISTILL_PREFIXES,  # noqa: E402
                                          checkpoint_state_dict, describe_mismatch,
                                          state_dict_mismatch)

STUDENT = 'architecture.'


def check_checkpoint(runner, filename: str, config: str) -> bool:
    """Refuse (``SystemExit``) a checkpoint that does not fit the model under test, before any evaluation.

    mmengine loads ``load_from`` with ``strict=False``: a checkpoint of another model would be evaluated with
    part of its weights random, after only a keys warning. What must fit is what predicts: the model itself,
    or, for a distillation config, its student (``architecture.*``; the teacher does not predict). A
    distillation config also accepts a plain checkpoint of its student (e.g. from
    ``convert_kd_ckpt_to_student.py``). Returns whether the checkpoint is such a plain student checkpoint
    (to be loaded under the ``architecture.`` prefix).
    """
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if isinstance(model, BaseTTAModel):
        model = model.module
    state = checkpoint_state_dict(_load_checkpoint(filename, map_location='cpu'), filename)
    distill = hasattr(model, 'architecture') and hasattr(model, 'teacher')
    plain_student = distill and not any(k.startswith(STUDENT) for k in state)
    if distill:
        what = 'the student (architecture) of this distillation config'
        expected = {STUDENT + k: v for k, v in model.architecture.state_dict().items()}
        given = {STUDENT + k: v for k, v in state.items()} if plain_student else \
            {k: v for k, v in state.items() if k.startswith(STUDENT)}
    else:
        what, expected, given = 'the model of this config', model.state_dict(), state
    missing, unexpected, mismatched = state_dict_mismatch(expected, given)
    if missing or mismatched:
        hint = ''
        if not distill and any(k.startswith(DISTILL_PREFIXES) for k in state):
            hint = (' It is a distillation checkpoint: test it with its distillation config, or extract the '
                    'student with tools/model_converters/convert_kd_ckpt_to_student.py.')
        elif plain_student:
            hint = ' It is a plain model checkpoint, and not one of this config\'s student.'
        sys.exit(f'Checkpoint {filename} does not fit {config}: {describe_mismatch(expected, given, what)}{hint} '
                 f'Its predictions would come from a partly random model. Give the checkpoint written by training '
                 f'this config (or, for a distillation config, its student\'s), or the config it was trained with.')
    if unexpected:
        runner.logger.warning(f'Checkpoint {filename}: {len(unexpected)} entries that {what} does not have are '
                              f'ignored ({", ".join(unexpected[:4])}{", ..." if len(unexpected) > 4 else ""}).')
    return plain_student


# TODO: support fuse_conv_bn and format_only
def parse_args():
    parser = argparse.ArgumentParser(
        description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
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
    parser.add_argument('--tta', action='store_true')
    # torch.distributed.run passes `--local-rank` (PyTorch >= 2.0).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()

    # Reduce the number of repeated compilations and improve
    # testing speed.
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

    cfg.load_from = args.checkpoint
    if cfg.model.get('teacher_ckpt'):
        # A distillation checkpoint holds the teacher's weights too: the teacher's own file is not needed.
        cfg.model.teacher_ckpt = None

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:

        if 'tta_model' not in cfg:
            warnings.warn('Cannot find ``tta_model`` in config, '
                          'we will set it as default.')
            cfg.tta_model = dict(
                type='DetTTAModel',
                tta_cfg=dict(
                    nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
        if 'tta_pipeline' not in cfg:
            warnings.warn('Cannot find ``tta_pipeline`` in config, '
                          'we will set it as default.')
            test_data_cfg = cfg.test_dataloader.dataset
            while 'dataset' in test_data_cfg:
                test_data_cfg = test_data_cfg['dataset']
            cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
            flip_tta = dict(
                type='TestTimeAug',
                transforms=[
                    [
                        dict(type='RandomFlip', prob=1.),
                        dict(type='RandomFlip', prob=0.)
                    ],
                    [
                        dict(
                            type='PackDetInputs',
                            meta_keys=('img_id', 'img_path', 'ori_shape',
                                       'img_shape', 'scale_factor', 'flip',
                                       'flip_direction'))
                    ],
                ])
            cfg.tta_pipeline[-1] = flip_tta
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    compat.setup_cpu_distributed(cfg)

    # build the runner from config
    if 'runner_type' not in cfg:
        # build the default runner
        runner = Runner.from_cfg(cfg)
    else:
        # build customized runner from the registry
        # if 'runner_type' is set in the cfg
        runner = RUNNERS.build(cfg)

    # a checkpoint that does not fit the model under test is refused before the evaluation
    if check_checkpoint(runner, args.checkpoint, args.config):
        runner.logger.info(f'{args.checkpoint} is a plain checkpoint of the student: loading it into the '
                           'distillation config\'s student (architecture).')
        runner.load_checkpoint(args.checkpoint, revise_keys=[(r'^module\.', ''), (r'^', STUDENT)])

    # add `DumpResults` dummy metric
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), \
            'The dump file must be a pkl file.'
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))

    # start testing
    runner.test()
    compat.finish_distributed()


if __name__ == '__main__':
    main()
