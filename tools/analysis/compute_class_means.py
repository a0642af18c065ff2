"""Compute a distillation config's teacher class means offline, for ``ClassMeansHook(file=...)``.

    python tools/analysis/compute_class_means.py configs/faster_rcnn_r101_r50_nd.py --out class_means_r101.pth
    python tools/analysis/compute_class_means.py CONFIG --out FILE --max-iters 2000 --cfg-options ...

Runs the same teacher pass as ``ClassMeansHook`` (detection: teacher RoI features labelled with their assigned
class, background included; classification: penultimate features by label) over the config's training data and
writes the means atomically, with the teacher checkpoint's path and SHA-256 (``ClassMeansHook(file=...)`` warns
when they are not its run's teacher's). An existing ``--out`` file is never overwritten unless ``--force`` is
given. The teacher checkpoint must fit the teacher (``teacher_ckpt_strict``, as for training).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mmkd  # noqa: E402,F401  (first: compatibility patches, registration)
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmkd.engine.hooks import compute_class_means  # noqa: E402
from mmkd.structures.class_means import checkpoint_identity  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='an mmkd distillation config with class_means')
    parser.add_argument('--out', required=True, help='class-means file to write')
    parser.add_argument('--max-iters', type=int, help='batches of the teacher pass (default: one epoch)')
    parser.add_argument('--work-dir', help='where the log goes (default: ./work_dirs/<config>_class_means)')
    parser.add_argument('--force', action='store_true', help='overwrite --out if it exists')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args()


def main():
    args = parse_args()
    if osp.exists(args.out) and not args.force:
        sys.exit(f'{args.out} exists; pass --force to replace it (or choose another --out).')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.model.get('class_means') is None:
        sys.exit(f'{args.config} has no model.class_means: it is not a config whose losses use teacher class means.')
    cfg.work_dir = args.work_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0] + '_class_means')
    cfg.custom_hooks = []  # no ClassMeansHook: this tool is the teacher pass
    runner = Runner.from_cfg(cfg)
    model = runner.model
    compute_class_means(model, cfg.train_dataloader, args.max_iters, runner)
    model.class_means.save(args.out, meta=dict(config=args.config, **checkpoint_identity(model.teacher_ckpt)))
    runner.logger.info(f'wrote {args.out}: [{model.class_means.num_classes}, {model.class_means.feat_dim}], '
                       f'means for {model.class_means.coverage()}')


if __name__ == '__main__':
    main()
