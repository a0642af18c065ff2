"""Diagnose a distillation config in a few batches, before hours of training are spent on it.

    python tools/analysis/diagnose_distill.py CONFIG [--checkpoint CKPT] [--num-batches 2] [--only CHECK ...] \
        [--seed 0] [--device cpu|cuda] [--debug] [--cfg-options KEY=VALUE ...]

Checks the usual reasons why a distilled student does not beat the student trained alone, each printed as one
line ``[OK]``, ``[WARN]`` or ``[FAIL] <what> — <why, and the fix>``, then a count; the exit code is 1 if any check
fails. The checks (teacher weights, teacher accuracy against chance, preprocessing, class means, each distillation
loss's gradient against the task loss's at full weight, RoI correspondence) and their rules are described in
:mod:`mmkd.analysis.diagnose`, which this command line runs.

``--checkpoint`` is a checkpoint of CONFIG's model (e.g. ``iter_1000.pth`` of a distillation run): student,
teacher and class means are taken from it. ``--only`` runs some of the checks (``weights``, ``accuracy``,
``preprocessing``, ``class_means``, ``losses``; the last includes RoI correspondence). ``--seed`` seeds the
weights, the data order and the augmentation. A check that cannot run is itself reported as a FAIL (``--debug``
prints its traceback). Nothing is written (no work dir, no checkpoint, no class-means file).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mmkd  # noqa: E402,F401  (first: compatibility patches, registration)
from mmengine.config import DictAction  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

from mmkd.analysis.diagnose import (CHECKS, FAIL, OK, WARN, Diagnosis, Verdict, accuracy_verdict,  # noqa: E402,F401
                                    gradient_verdict, line, load_config, pipeline_scale, preprocessing_differences,
                                    preprocessing_summary, summary_line)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='a distillation (or student) config')
    parser.add_argument('--checkpoint', help='a checkpoint of CONFIG\'s model (student, teacher, class means)')
    parser.add_argument('--num-batches', type=int, default=2, help='validation / training batches per check')
    parser.add_argument('--device', help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the weights\' initialisation, the data order and the augmentation')
    parser.add_argument('--debug', action='store_true', help='print the traceback of a check that cannot run')
    parser.add_argument('--only', nargs='+', choices=list(CHECKS), default=list(CHECKS), metavar='CHECK',
                        help=f'run only these checks, among {list(CHECKS)} (losses includes RoI correspondence)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    args = parser.parse_args(argv)
    if args.num_batches < 1:
        parser.error('--num-batches must be >= 1')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'--checkpoint {args.checkpoint} does not exist')
    return args


def main(argv=None) -> int:
    """Prints the verdicts; returns the exit code (1 if any FAIL)."""
    args = parse_args(argv)
    # only warnings from mmengine (init_weights otherwise prints every parameter): the verdicts are the output
    if not MMLogger.check_instance_created('diagnose_distill'):
        MMLogger.get_instance('diagnose_distill', log_level='WARNING')
    cfg = load_config(args.config, args.cfg_options)
    verdicts = Diagnosis(cfg, args.checkpoint, args.num_batches, args.device, args.debug, args.only,
                         seed=args.seed).run()
    print(summary_line(verdicts), flush=True)
    return 1 if any(v.level == FAIL for v in verdicts) else 0


if __name__ == '__main__':
    sys.exit(main())
