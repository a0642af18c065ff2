"""The detection study on mmkd's synthetic shapes: a Faster R-CNN R50-FPN teacher, then R18-FPN students alone,
with plain KD and with each method (alone and with KD), over several seeds; COCO bbox mAP on the validation images.
The command line is ``tools/analysis/det_study.py`` (``make demo``: ``tools/analysis/run_demo.py``).

    python tools/analysis/det_study.py                       # the study: 8 student rows x 3 seeds
    python tools/analysis/det_study.py --rows baseline --seeds 0 1 2 --eval-on heldout   # tune the schedule
    python tools/analysis/det_study.py --rows nd --seeds 0 --eval-on heldout \\
        --variant nd_w2 nd model.distiller.distill_losses.loss_nd.loss_weight=2.0        # tune a weight

``--family gfl`` is the dense study, on the same machinery and data: a GFL R50-FPN teacher and GFL R18-FPN students
(``configs/demo/gfl_*``, mmkd.DenseDistill, docs/dense.md) alone, with LD, PKD, CWD, FGD, CrossKD, CrossKD + PKD,
ND-dense and iCD-dense [PROPOSAL] (:data:`DENSE_ROWS`); its runs go to ``work_dirs/dense_study`` and its records
say ``"study": "dense"``.

    python tools/analysis/det_study.py --family gfl          # the dense study: 9 student rows x 3 seeds

Protocol: the rows and seeds are fixed before any result is seen. The schedule (``configs/demo/``) was chosen on
the student-alone row only and every row uses it unchanged; a method's own weights may be tuned with
``--eval-on heldout`` only (at most 4 values per method, at one seed), which trains on the first ``--num-train``
generated training images and evaluates on the ``--num-heldout`` after them, never on the validation images the
study reports, and goes to its own folder (``<work-dir>_heldout``, its ``results.jsonl`` the tuning log). A tuned
weight becomes a separate labelled row (``--variant NAME ROW KEY=VALUE ...``); the shipped row stays.

Data: ``--num-classes``, ``--img-size``, ``--min-object-size`` and ``--data-seed`` choose the generated data and
reach every run, the teacher included: the classes (``metainfo`` of every dataloader's dataset), the class count
of the model's heads (teacher and student) and the images' resize scale are passed as ``--cfg-options``. Data
other than the defaults goes to its own data root and work dir (``data/synthetic_coco_<tag>``,
``work_dirs/det_study_<tag>``) unless they are given.

Runs: every run is a ``tools/train.py`` subprocess (log: ``<run>/train.log``), ``--jobs`` side by side with
``--threads`` torch threads each; the teacher (seed 0) trains once and is reused, as a distributed run of
``--teacher-procs`` processes (what ``tools/dist_train.sh`` runs; gloo on a CPU) that takes as many places. A run
whose record (``<run>/study_run.json``: the command, the data's digest and, for a student, its teacher's record
key) matches is skipped, so an interrupted study resumes. A run that fails is listed in the table with its log, the
others go on, and the command exits with status 1 at the end. Each run is appended to ``<out>/results.jsonl`` as it
finishes (the format ``plot_study.py`` reads); the table goes to ``<out>/results.md``. Every Δ is paired: the mean
over seeds of (row - reference) at the same seed, ± its standard error, with n. Under the table: the rows ranked by
mean and how each seed alone (``make demo`` is seed 0) orders them (:func:`ranking`).
"""
import argparse
import glob
import json
import os
import os.path as osp
import shlex
import statistics
import sys
import threading
import time
from collections import namedtuple
from typing import Dict, List, Optional, Sequence

from .study import (REPO, Job, StudyRunner, format_delta, format_value, machine, paired_delta, rank_agreement,
                    relpath, rewrite_results, seed_summary, validation_records)
from .study import last_quarter_change as study_last_quarter_change

CONFIG_DIR = 'configs/demo'
TEACHER = 'faster_rcnn_r50_teacher.py'
Row = namedtuple('Row', 'config label base')
# row -> (config, label, paired base: the row the method adds to); every row is also compared with the student alone
ROWS = {
    'baseline': Row('faster_rcnn_r18_baseline.py', 'student R18-FPN alone', None),
    'kd': Row('faster_rcnn_r50_r18_kd.py', 'KD (RoI logits)', 'baseline'),
    'nd_nokd': Row('faster_rcnn_r50_r18_nd_nokd.py', 'ND alone', 'baseline'),
    'nd': Row('faster_rcnn_r50_r18_nd.py', 'KD++ (ND + KD)', 'kd'),
    'reviewkd': Row('faster_rcnn_r50_r18_reviewkd.py', 'ReviewKD', 'baseline'),
    'reviewkdpp': Row('faster_rcnn_r50_r18_reviewkdpp.py', 'ReviewKD++ (ND + ReviewKD)', 'reviewkd'),
    'nc': Row('faster_rcnn_r50_r18_nc.py', 'NC + KD [PROPOSAL]', 'kd'),
    'icd': Row('faster_rcnn_r50_r18_icd.py', 'iCD-RoI + KD [PROPOSAL]', 'kd'),
    'nc_nokd': Row('faster_rcnn_r50_r18_nc_nokd.py', 'NC alone [PROPOSAL]', 'baseline'),
    'icd_nokd': Row('faster_rcnn_r50_r18_icd_nokd.py', 'iCD-RoI alone [PROPOSAL]', 'baseline'),
}
# the study's rows, fixed before any result (NC alone and iCD alone only if the time budget allows: --rows)
STUDY_ROWS = ['baseline', 'kd', 'nd_nokd', 'nd', 'reviewkd', 'reviewkdpp', 'nc', 'icd']
# `make demo`'s rows (mmkd.analysis.demo): the study's seed-0 runs of these (the student alone, the plain base,
# the founding ND in KD++ and the study's best; the dense pair takes the rest of its 20 minutes); the study says
# how they rank at one seed
DEMO_ROWS = ['baseline', 'kd', 'nd', 'reviewkdpp']
STUDENT_ALONE = 'baseline'
TEACHER_LABEL = 'teacher R50-FPN'

# The dense family (``--family gfl``): a GFL R50-FPN teacher and GFL R18-FPN students (mmkd.DenseDistill), the demo
# configs of docs/dense.md. Rows and seeds fixed before any result; every method on its own against the student
# alone, CrossKD + PKD also against CrossKD.
DENSE_TEACHER = 'gfl_r50_teacher.py'
DENSE_ROWS = {
    'baseline': Row('gfl_r18_baseline.py', 'student GFL R18-FPN alone', None),
    'ld': Row('gfl_r50_r18_ld.py', 'LD', 'baseline'),
    'pkd': Row('gfl_r50_r18_pkd.py', 'PKD', 'baseline'),
    'cwd': Row('gfl_r50_r18_cwd.py', 'CWD', 'baseline'),
    'fgd': Row('gfl_r50_r18_fgd.py', 'FGD', 'baseline'),
    'crosskd': Row('gfl_r50_r18_crosskd.py', 'CrossKD', 'baseline'),
    'crosskd_pkd': Row('gfl_r50_r18_crosskd_pkd.py', 'CrossKD + PKD', 'crosskd'),
    'nd': Row('gfl_r50_r18_nd.py', 'ND-dense [PROPOSAL]', 'baseline'),
    'icd': Row('gfl_r50_r18_icd.py', 'iCD-dense [PROPOSAL]', 'baseline'),
    # added after the study's results (not among its fixed rows): FGD with the authors' init_student, and that start
    # without any distillation loss (the control FGD's loss is paired against)
    'init_only': Row('gfl_r50_r18_init_only.py', 'student alone, neck + head from the teacher (added after the '
                     'results)', 'baseline'),
    'fgd_init': Row('gfl_r50_r18_fgd_init.py', 'FGD, student neck + head from the teacher (added after the results)',
                    'init_only'),
}
DENSE_STUDY_ROWS = ['baseline', 'ld', 'pkd', 'cwd', 'fgd', 'crosskd', 'crosskd_pkd', 'nd', 'icd']
Family = namedtuple('Family', 'teacher teacher_label rows study_rows demo_rows work_dir study title')
FAMILIES = {
    'faster_rcnn': Family(TEACHER, TEACHER_LABEL, ROWS, STUDY_ROWS, DEMO_ROWS, 'work_dirs/det_study', 'det',
                          'Detection study on synthetic shapes'),
    'gfl': Family(DENSE_TEACHER, 'teacher GFL R50-FPN', DENSE_ROWS, DENSE_STUDY_ROWS, [], 'work_dirs/dense_study',
                  'dense', 'Dense detection study (GFL) on synthetic shapes'),
}
METRIC = 'coco/bbox_mAP'
MAX_TUNED_VALUES = 4
DATA_DEFAULTS = dict(num_train=2000, num_heldout=400, num_val=300, img_size=64, num_classes=4, min_object_size=16,
                     data_seed=0)
# mmengine's Config.fromfile resolves `mmdet::` bases through pkg_resources, which is not thread-safe
_CONFIG_LOCK = threading.Lock()


def parser(defaults: dict = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--family', choices=list(FAMILIES), default='faster_rcnn',
                   help='the detectors: faster_rcnn (Faster R-CNN R50-FPN -> R18-FPN, RoI methods) or gfl (GFL '
                   'R50-FPN -> R18-FPN, dense methods: ' + ' '.join(DENSE_STUDY_ROWS) + ')')
    p.add_argument('--rows', nargs='*', default=None, choices=list(dict.fromkeys([*ROWS, *DENSE_ROWS])),
                   help=f'student rows to run (none: only the teacher; default: {" ".join(STUDY_ROWS)}, with '
                   f'--family gfl: {" ".join(DENSE_STUDY_ROWS)})')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--variant', nargs='+', action='append', default=[], metavar='NAME ROW KEY=VALUE',
                   help='an extra row NAME: ROW\'s config with these --cfg-options (a tuned weight; repeatable)')
    p.add_argument('--work-dir', help='runs go to <work-dir>/<row>/seed<S> (default: work_dirs/det_study, '
                   '+ _<data tag> for other data, + _heldout with --eval-on heldout)')
    p.add_argument('--teacher-dir', help='the teacher\'s work dir (default: <work-dir>/teacher; the evaluation '
                   'split does not change the teacher, so a tuning study shares the reported study\'s teacher)')
    p.add_argument('--out', help='where results.jsonl / results.md go (default: <work-dir>)')
    p.add_argument('--teacher-config', help=f'the teacher\'s config in {CONFIG_DIR} (default: the family\'s, '
                   f'{TEACHER}; with --family gfl {DENSE_TEACHER})')
    p.add_argument('--data-root', help='synthetic data folder, generated if needed (default: data/synthetic_coco, '
                   '+ _<data tag> for other data)')
    p.add_argument('--num-train', type=int, default=DATA_DEFAULTS['num_train'], help='training images')
    p.add_argument('--num-heldout', type=int, default=DATA_DEFAULTS['num_heldout'],
                   help='generated training-distribution images kept out of training, for --eval-on heldout')
    p.add_argument('--num-val', type=int, default=DATA_DEFAULTS['num_val'], help='validation images (reported)')
    p.add_argument('--img-size', type=int, default=DATA_DEFAULTS['img_size'],
                   help='image side (also every run\'s resize scale)')
    p.add_argument('--num-classes', type=int, default=DATA_DEFAULTS['num_classes'],
                   help='shape classes (also every run\'s dataset classes and heads\' num_classes)')
    p.add_argument('--min-object-size', type=int, default=DATA_DEFAULTS['min_object_size'])
    p.add_argument('--data-seed', type=int, default=DATA_DEFAULTS['data_seed'], help='seed of the data generator')
    p.add_argument('--eval-on', choices=['val', 'heldout'], default='val',
                   help='heldout: evaluate on the held-out training images (for tuning; never tune on val)')
    p.add_argument('--student-iters', type=int, help='override every student row\'s max_iters (the same for all)')
    p.add_argument('--teacher-iters', type=int, help='override the teacher\'s max_iters')
    p.add_argument('--jobs', type=int, default=2, help='runs side by side')
    p.add_argument('--teacher-procs', type=int, default=2,
                   help='processes that train the teacher together (torch.distributed.run, gloo on a CPU; the '
                   'teacher config\'s batch is per process, its schedule is for 2); it takes that many of the '
                   '--jobs places')
    p.add_argument('--threads', type=int, default=1, help='torch threads per run (OMP/MKL_NUM_THREADS)')
    p.add_argument('--deterministic', action='store_true', help='mmengine randomness.deterministic=True')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                   help='passed to every student run (not the teacher)')
    p.add_argument('--teacher-cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                   help='passed to the teacher run (part of its record key: another teacher, retrained with its '
                   'students)')
    p.add_argument('--force', action='store_true', help='retrain runs that already finished')
    p.add_argument('--dry-run', action='store_true', help='print the training commands only')
    p.add_argument('--report', action='store_true',
                   help='train nothing: summarise the runs that have finished (an interrupted study) and list the rest')
    # teacher_init: a record of the run the teacher starts from (make demo's dense teacher starts from its Faster
    # R-CNN teacher's backbone), part of the teacher's key so that a retrained start retrains the teacher
    p.set_defaults(default_work_dir=None, teacher_init=None)
    if defaults:
        p.set_defaults(**defaults)
    return p


def data_tag(args: argparse.Namespace) -> str:
    """'' for the default data, else a name of the options that differ (e.g. ``c6_d1``)."""
    short = dict(num_train='n', num_heldout='h', num_val='v', img_size='i', num_classes='c', min_object_size='m',
                 data_seed='d')
    return '_'.join(f'{short[k]}{getattr(args, k)}' for k, v in DATA_DEFAULTS.items() if getattr(args, k) != v)


def parse_args(argv=None, defaults: dict = None) -> argparse.Namespace:
    p = parser(defaults)
    args = p.parse_args(argv)
    for name in ('num_train', 'num_val', 'jobs', 'teacher_procs', 'threads', 'student_iters', 'teacher_iters'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.num_heldout < 0 or args.data_seed < 0:
        p.error('--num-heldout and --data-seed must be >= 0')
    if args.eval_on == 'heldout' and args.num_heldout < 1:
        p.error('--eval-on heldout needs --num-heldout >= 1')
    from mmkd.datasets.synthetic import SHAPE_CLASSES
    if not 2 <= args.num_classes <= len(SHAPE_CLASSES):
        p.error(f'--num-classes must be in [2, {len(SHAPE_CLASSES)}] (the generator\'s shapes), got {args.num_classes}')
    if not 32 <= args.img_size <= 1024 or not 4 <= args.min_object_size <= int(0.75 * args.img_size):
        p.error(f'--img-size must be in [32, 1024] and --min-object-size in [4, 0.75 * img size], got '
                f'{args.img_size} and {args.min_object_size}')
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f'--seeds lists a seed twice: {args.seeds}')
    fam = args.family_spec = FAMILIES[args.family]
    rows = fam.rows
    if args.rows is None:
        args.rows = list(fam.study_rows)
    args.rows = list(dict.fromkeys(args.rows))
    other = [r for r in args.rows if r not in rows]
    if other:
        p.error(f'--rows {" ".join(other)}: not a row of --family {args.family} (its rows: {" ".join(rows)})')
    if args.default_work_dir is None:
        args.default_work_dir = fam.work_dir
    args.variants = {}
    for name, *rest in args.variant:
        if len(rest) < 2 or rest[0] not in rows or any('=' not in opt for opt in rest[1:]):
            p.error(f'--variant {name} {" ".join(rest)}: expected NAME ROW KEY=VALUE [KEY=VALUE ...] with ROW in '
                    f'{list(rows)}')
        if name in rows or name in args.variants or name == 'teacher' or '/' in name:
            p.error(f'--variant {name}: the name is taken (or has a "/"); choose another')
        args.variants[name] = (rest[0], rest[1:])
    if args.eval_on == 'heldout':
        if args.variants and len(args.seeds) > 1:
            p.error(f'--variant with --eval-on heldout tunes a weight, at one seed (the protocol); got --seeds '
                    f'{" ".join(map(str, args.seeds))}: pass one')
        for row in rows:
            tuned = [n for n, (r, _) in args.variants.items() if r == row]
            if len(tuned) > MAX_TUNED_VALUES:
                p.error(f'{len(tuned)} variants of {row} ({", ".join(tuned)}): the protocol tunes at most '
                        f'{MAX_TUNED_VALUES} values per method; drop some')
    args.teacher_config = args.teacher_config or fam.teacher
    missing = sorted({rows[r].config for r in args.rows + [r for r, _ in args.variants.values()]
                      if not osp.isfile(osp.join(REPO, CONFIG_DIR, rows[r].config))})
    if osp.dirname(args.teacher_config) or not osp.isfile(osp.join(REPO, CONFIG_DIR, args.teacher_config)):
        p.error(f'--teacher-config {args.teacher_config}: not a config in {CONFIG_DIR} (e.g. {fam.teacher})')
    if missing:
        p.error(f'the config(s) {", ".join(missing)} of the rows asked for are not in {CONFIG_DIR}; '
                'choose other --rows')
    tag = data_tag(args)
    given_work_dir = args.work_dir is not None
    base = args.default_work_dir + (f'_{tag}' if tag else '')
    if not given_work_dir:  # tuning runs never land in the reported study's folder
        args.work_dir = base + ('_heldout' if args.eval_on == 'heldout' else '')
    args.work_dir = osp.abspath(args.work_dir)
    args.teacher_dir = osp.abspath(args.teacher_dir or osp.join(args.work_dir if given_work_dir else base,
                                                                'teacher'))
    args.out = osp.abspath(args.out or args.work_dir)
    args.data_root = osp.abspath(args.data_root or 'data/synthetic_coco' + (f'_{tag}' if tag else ''))
    args.argv = sys.argv[1:] if argv is None else list(argv)
    return args


def all_rows(args) -> List[str]:
    return list(args.rows) + list(args.variants)


def teacher_label(args) -> str:
    """The family's teacher label, with the config's name when ``--teacher-config`` is another one."""
    fam = args.family_spec
    return fam.teacher_label + ('' if args.teacher_config == fam.teacher else f' ({args.teacher_config})')


def teacher_checkpoint(args) -> str:
    """The checkpoint the teacher's run ends with, ``<teacher dir>/iter_<its max_iters>.pth``: the students'
    ``teacher_ckpt``."""
    iters = args.teacher_iters or load_config(f'{CONFIG_DIR}/{args.teacher_config}').train_cfg.max_iters
    return osp.join(args.teacher_dir, f'iter_{iters}.pth')


def row_spec(args, name: str) -> tuple:
    """``(config, label, base, extra --cfg-options)`` of a row or a variant (which keeps its row's base)."""
    rows = args.family_spec.rows
    if name in rows:
        return (*rows[name], [])
    row, opts = args.variants[name]
    config, label, base = rows[row]
    return config, f'{label}, tuned: {" ".join(opts)}', base, list(opts)


# ------------------------------------------------------------------------------------------------ data
def split_files(args) -> dict:
    split_dir = osp.join(args.data_root, 'study_splits')
    return {name: osp.join(split_dir, f'instances_{name}_{args.num_train}_{args.num_heldout}.json')
            for name in ('train', 'heldout')}


def classes(args) -> tuple:
    """The class names the generator gives ``--num-classes`` shapes."""
    from mmkd.datasets.synthetic import SHAPE_CLASSES
    return tuple(SHAPE_CLASSES[:args.num_classes])


def data_options(args) -> dict:
    """The data --cfg-options evaluating on the validation images (``'val'``) and on the held-out ones
    (``'heldout'``): the data root, the training part's annotation file and the evaluated split."""
    root = args.data_root + '/'
    files = split_files(args)
    opts = [f'{loader}.dataset.data_root={root}' for loader in ('train_dataloader', 'val_dataloader',
                                                                'test_dataloader')]
    opts.append(f'train_dataloader.dataset.ann_file={files["train"]}')
    out = {}
    for split, ann, img in (('val', osp.join(args.data_root, 'annotations', 'instances_val.json'), 'images/val/'),
                            ('heldout', files['heldout'], 'images/train/')):
        out[split] = opts + [f'{loader}.dataset.{key}' for loader in ('val_dataloader', 'test_dataloader')
                             for key in (f'ann_file={ann}', f'data_prefix.img={img}')]
        out[split] += [f'{e}.ann_file={ann}' for e in ('val_evaluator', 'test_evaluator')]
    return out


def prepare_data(args) -> dict:
    """Generate the shapes (training + held-out images in one training split, ``--data-seed``), write the
    annotation files of the training part and of the held-out part, check the generated classes; returns
    :func:`data_options`."""
    from mmkd.datasets.synthetic import generate_coco_detection
    paths = generate_coco_detection(args.data_root, num_train=args.num_train + args.num_heldout,
                                    num_val=args.num_val, img_size=args.img_size, num_classes=args.num_classes,
                                    min_object_size=args.min_object_size, seed=args.data_seed,
                                    num_workers=args.jobs)
    with open(paths['train_ann_file']) as f:
        coco = json.load(f)
    names = tuple(c['name'] for c in sorted(coco['categories'], key=lambda c: c['id']))
    if names != classes(args):
        raise RuntimeError(f'{paths["train_ann_file"]} names its classes {names}, not {classes(args)}: the '
                           'generator changed; update det_study.classes()')
    files = split_files(args)
    os.makedirs(osp.dirname(files['train']), exist_ok=True)
    for name, keep in (('train', lambda i: i <= args.num_train), ('heldout', lambda i: i > args.num_train)):
        ids = {im['id'] for im in coco['images'] if keep(im['id'])}
        part = dict(coco, images=[im for im in coco['images'] if im['id'] in ids],
                    annotations=[a for a in coco['annotations'] if a['image_id'] in ids])
        text = json.dumps(part, separators=(',', ':'))
        if not osp.isfile(files[name]) or open(files[name]).read() != text:
            with open(files[name] + '.tmp', 'w') as f:
                f.write(text)
            os.replace(files[name] + '.tmp', files[name])
    return data_options(args)


def data_digest(args) -> Optional[str]:
    """The generated data's digest (its manifest's sha256 and arguments), ``None`` if it is not there."""
    try:
        with open(osp.join(args.data_root, 'manifest.json')) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return f'{manifest.get("sha256")} {json.dumps(manifest.get("args"), sort_keys=True)}'


# ------------------------------------------------------------------------------------------------ configs
_CONFIGS: Dict[str, object] = {}


def load_config(config: str):
    from mmengine.config import Config
    with _CONFIG_LOCK:
        if config not in _CONFIGS:
            _CONFIGS[config] = Config.fromfile(osp.join(REPO, config))
        return _CONFIGS[config]


def _dataset_paths(cfg, loader: str) -> List[str]:
    """Key paths of ``loader``'s dataset and of the datasets it wraps (``dataset.dataset``...)."""
    paths, path, ds = [], f'{loader}.dataset', cfg.get(loader, {}).get('dataset')
    while isinstance(ds, dict):
        paths.append(path)
        path, ds = path + '.dataset', ds.get('dataset')
    return paths


def _num_classes_paths(node, path: str, n: int) -> List[str]:
    """Key paths of every ``num_classes`` equal to ``n`` under ``node`` (dicts and lists)."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == 'num_classes' and v == n:
                found.append(f'{path}.num_classes')
            else:
                found += _num_classes_paths(v, f'{path}.{k}', n)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            found += _num_classes_paths(v, f'{path}.{i}', n)
    return found


def class_options(config: str, names: Sequence[str], img_size: int) -> List[str]:
    """--cfg-options that give ``config``'s run these classes and this image size: every dataloader dataset's
    ``metainfo.classes``, every ``num_classes`` of the model equal to the config's class count (the teacher's
    and the student's heads) and every ``Resize`` scale of the pipelines. ValueError if the config's classes or
    heads cannot be found (the study's data options would not reach the run)."""
    cfg = load_config(config)
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    datasets = [p for loader in loaders for p in _dataset_paths(cfg, loader)]
    old = None
    for path in datasets:
        ds = cfg
        for k in path.split('.'):
            ds = ds[k]
        if (ds.get('metainfo') or {}).get('classes'):
            old = tuple(ds['metainfo']['classes'])
            break
    if old is None:
        raise ValueError(f'{config}: no dataloader dataset names its classes (metainfo.classes), so the study '
                         'cannot pass --num-classes to it; add metainfo=dict(classes=...) to its datasets')
    heads = _num_classes_paths(cfg.model, 'model', len(old))
    if not heads:
        raise ValueError(f'{config}: the model has no num_classes={len(old)} (its datasets\' class count), so '
                         'the study cannot pass --num-classes to its heads')
    tup = '(' + ','.join(names) + ')'
    opts = [f'{p}.metainfo.classes={tup}' for p in datasets]
    if 'metainfo' in cfg:
        opts.append(f'metainfo.classes={tup}')
    opts += [f'{p}={len(names)}' for p in heads]
    for path in datasets:
        ds = cfg
        for k in path.split('.'):
            ds = ds[k]
        for i, t in enumerate(ds.get('pipeline') or []):
            if isinstance(t, dict) and t.get('type') == 'Resize' and 'scale' in t:
                opts.append(f'{path}.pipeline.{i}.scale=({img_size},{img_size})')
    return opts


def schedule_options(config: str, iters) -> list:
    """--cfg-options that set max_iters and scale the validation interval, LR milestones and checkpoint with it."""
    if iters is None:
        return []
    cfg = load_config(config)
    old = cfg.train_cfg.max_iters
    val_interval = max(1, cfg.train_cfg.val_interval * iters // old)
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={val_interval}',
            f'default_hooks.checkpoint.interval={iters}']
    for i, s in enumerate(cfg.param_scheduler):
        if s['type'] == 'MultiStepLR':
            milestones = ','.join(str(int(m * iters / old)) for m in s['milestones'])
            opts += [f'param_scheduler.{i}.end={iters}', f'param_scheduler.{i}.milestones=[{milestones}]']
    return opts


# ------------------------------------------------------------------------------------------------ results of a run
def val_history(work_dir: str) -> list:
    """Every validation record of the newest mmengine log of ``work_dir`` (``<stamp>/vis_data/scalars.json``).

    mmengine's ``LoggerHook`` logs validation scalars at ``step=epoch`` unless ``log_metric_by_epoch=False`` (the
    demo configs set it): under an ``IterBasedTrainLoop`` every record then says step 0. Such steps are replaced
    by the iterations they were taken at, ``k * train_cfg.val_interval`` of the config the run dumped.
    """
    records = validation_records(work_dir, METRIC)
    if len(records) > 1 and len({r['step'] for r in records}) == 1:
        from mmengine.config import Config
        dumped = glob.glob(osp.join(work_dir, '*.py'))
        with _CONFIG_LOCK:
            interval = Config.fromfile(dumped[0]).train_cfg.val_interval
        records = [dict(r, step=(i + 1) * interval) for i, r in enumerate(records)]
    return records


def last_checkpoint(work_dir: str) -> Optional[str]:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


def collect(work_dir: str, checkpoint: Optional[str] = None) -> Optional[dict]:
    """The results of a finished run (its final validation and the history), ``None`` if its last checkpoint
    (``checkpoint`` if given) or its validations are missing."""
    ckpt = last_checkpoint(work_dir)
    if ckpt is None or (checkpoint is not None and not osp.isfile(checkpoint)):
        return None
    history = val_history(work_dir)
    if not history:
        return None
    final = history[-1]
    return dict(metric_name=METRIC, metric=final[METRIC], history=history,
                metrics={k: v for k, v in final.items() if k.startswith(('coco/', 'nc/', 'distill/'))})


# ------------------------------------------------------------------------------------------------ jobs
def jobs(args, data: dict, digest: Optional[str]) -> List[Job]:
    """The teacher (if a row needs it) and every (row, seed), seed by seed so that an interrupted study has every
    row at its first seeds."""
    names = classes(args)
    fam = args.family_spec
    alone_config = fam.rows[STUDENT_ALONE].config
    common = ['randomness.deterministic=True'] if args.deterministic else []
    out = []
    t_config = f'{CONFIG_DIR}/{args.teacher_config}'
    rows = all_rows(args)
    need_teacher = not rows or any(row_spec(args, r)[0] != alone_config for r in rows)
    teacher_key = t_ckpt = None
    if need_teacher:
        t_ckpt = teacher_checkpoint(args)
        opts = (data['val'] + class_options(t_config, names, args.img_size) +
                schedule_options(t_config, args.teacher_iters) + list(args.teacher_cfg_options) + common +
                ['randomness.seed=0'])
        cmd = [sys.executable, 'tools/train.py', t_config]
        if args.teacher_procs > 1:  # what tools/dist_train.sh runs; --standalone: a free port of its own
            cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                   f'--nproc-per-node={args.teacher_procs}', 'tools/train.py', t_config, '--launcher', 'pytorch']
        cmd += ['--work-dir', args.teacher_dir, '--cfg-options', *opts]
        teacher_key = dict(cmd=cmd[1:], data=digest, **({'init': args.teacher_init} if args.teacher_init else {}))
        out.append(Job('teacher', 0, cmd, args.teacher_dir, teacher_key,
                       collect=lambda wd, ckpt=t_ckpt: collect(wd, ckpt), slots=args.teacher_procs,
                       info=dict(study=fam.study, label=teacher_label(args), config=t_config)))
    order = sorted(((row, seed) for row in rows for seed in args.seeds),
                   key=lambda rs: (args.seeds.index(rs[1]), rows.index(rs[0])))
    for row, seed in order:
        config, label, _, extra = row_spec(args, row)
        config = f'{CONFIG_DIR}/{config}'
        distilled = config != f'{CONFIG_DIR}/{alone_config}'
        work_dir = osp.join(args.work_dir, row, f'seed{seed}')
        opts = (data[args.eval_on] + class_options(config, names, args.img_size) +
                schedule_options(config, args.student_iters) + list(args.cfg_options) + extra + common +
                ([f'model.teacher_ckpt={t_ckpt}'] if distilled else []) + [f'randomness.seed={seed}'])
        cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *opts]
        key = dict(cmd=cmd[1:], data=digest, teacher=teacher_key if distilled else None)
        out.append(Job(row, seed, cmd, work_dir, key, collect=collect, needs=('teacher', 0) if distilled else None,
                       info=dict(study=fam.study, label=label, config=config)))
    return out


# ------------------------------------------------------------------------------------------------ report
def last_quarter_change(records: list) -> Optional[float]:
    """:func:`mmkd.analysis.study.last_quarter_change` of the mAP."""
    return study_last_quarter_change(records, METRIC)


def seed_metrics(rows: Dict[str, List[dict]]) -> Dict[str, Dict[int, float]]:
    """``{row: {seed: mAP}}`` of the rows' run records."""
    return {row: {r['seed']: r['metric'] for r in records} for row, records in rows.items()}


def table(teacher: Optional[dict], rows: Dict[str, List[dict]], seeds: Sequence[int],
          failures: Sequence[dict] = (), labels: Dict[str, str] = None, bases: Dict[str, str] = None,
          teacher_label: str = TEACHER_LABEL) -> str:
    """The study's table: per row every seed (``missing`` / ``FAILED`` where a seed has no result), n, mean ±
    sample std, the paired Δ against the student alone and against the row's base (default: :data:`ROWS`),
    mAP50, the last-quarter change and the time per run; then the failed runs with their logs. The student alone
    is the row :data:`STUDENT_ALONE` of every family."""
    labels = labels or {r: spec.label for r, spec in ROWS.items()}
    bases = bases or {r: spec.base for r, spec in ROWS.items()}
    f3 = format_value
    failed = {(f['method'], f['seed']) for f in failures}
    metric = seed_metrics(rows)
    head = ('| row | ' + ' | '.join(f'seed {s}' for s in seeds) + ' | n | mean ± std | Δ vs alone (paired) '
            '| Δ vs base (paired) | mAP50 | last-quarter Δ | s / run |')
    lines = [head, '|' + '---|' * (len(seeds) + 8)]  # row, the seeds and 7 more columns
    if teacher is not None:
        lines.append(f'| {teacher_label} (seed 0) | {f3(teacher["metric"])} |' + ' |' * (len(seeds) - 1) +
                     f' 1 | {f3(teacher["metric"])} | | | {f3(teacher["metrics"].get("coco/bbox_mAP_50"))} | '
                     f'{f3(last_quarter_change([teacher]))} | {teacher["seconds"]:.0f} |')
    elif ('teacher', 0) in failed:
        lines.append(f'| {teacher_label} (seed 0) | FAILED |' + ' |' * (len(seeds) + 6))
    names = list(rows) + [f['method'] for f in failures if f['method'] not in rows and f['method'] != 'teacher']
    for row in dict.fromkeys(names):
        records = rows.get(row, [])
        stats = seed_summary(metric.get(row, {}), seeds)
        cells = [f3(metric[row][s]) if s in metric.get(row, {}) else 'FAILED' if (row, s) in failed else 'missing'
                 for s in seeds]
        alone = paired_delta(metric[row], metric[STUDENT_ALONE], seeds) \
            if row != STUDENT_ALONE and STUDENT_ALONE in metric and row in metric else None
        base = bases.get(row)
        vs_base = ''
        if base and base != STUDENT_ALONE and base in metric and row in metric:
            vs_base = f'{format_delta(paired_delta(metric[row], metric[base], seeds))} vs {labels.get(base, base)}'
        m50 = [r['metrics']['coco/bbox_mAP_50'] for r in records if 'coco/bbox_mAP_50' in r.get('metrics', {})]
        std = f' ± {f3(stats["std"])}' if stats['std'] is not None else ''
        lines.append(f'| {labels.get(row, row)} | ' + ' | '.join(cells) +
                     f' | {stats["n"]} | {f3(stats["mean"])}{std} | '
                     f'{format_delta(alone)} | {vs_base} | {f3(statistics.fmean(m50) if m50 else None)} | '
                     f'{f3(last_quarter_change(records))} | '
                     f'{f3(statistics.fmean(r["seconds"] for r in records) if records else None, ".0f")} |')
    if failures:
        lines += ['', f'Failed runs ({len(failures)}; each left out of the statistics above):', '']
        lines += [f'- {labels.get(f["method"], f["method"])} (`{f["method"]}`) seed {f["seed"]}: {f["error"]} '
                  f'(log: {relpath(f["log"])})' for f in failures]
    return '\n'.join(lines)


def ranking(rows: Dict[str, List[dict]], seeds: Sequence[int], labels: Dict[str, str] = None,
            subsets: Dict[str, Sequence[str]] = None) -> str:
    """The rows ranked by mean mAP over ``seeds`` (those with every seed; the teacher is not a row here), and how
    far each seed alone ranks them so (:func:`mmkd.analysis.study.rank_agreement`): Kendall's tau, the pairs it
    swaps with their paired Δ, and which of those the seeds separate by more than 2 SE; the same for each named
    subset of rows (``{'the demo's rows': DEMO_ROWS}``). ``''`` for one seed."""
    if len(seeds) < 2:
        return ''
    labels = labels or {r: spec.label for r, spec in ROWS.items()}
    metric = seed_metrics(rows)
    lines = []
    for title, names in {'all rows': list(metric), **(subsets or {})}.items():
        agreement = rank_agreement({r: metric[r] for r in names if r in metric}, seeds)
        if len(agreement['order']) < 2:
            continue
        left_out = (f' (left out, a seed missing: {", ".join(labels.get(r, r) for r in agreement["left_out"])})'
                    if agreement['left_out'] else '')
        lines.append(f'Ranking of {title} by mean over seeds {", ".join(map(str, seeds))}{left_out}: '
                     + ' > '.join(labels.get(r, r) for r in agreement['order']) + '.')
        for s, a in agreement['seeds'].items():
            swaps = '; '.join(f'{labels.get(x, x)} below {labels.get(y, y)} (paired Δ '
                              f'{format_delta(a["deltas"][x, y])})' for x, y in a['swapped'])
            separated = ', '.join(f'{labels.get(x, x)} / {labels.get(y, y)}' for x, y in a['separated']) or 'none'
            lines.append(f'- seed {s} alone: Kendall tau {a["tau"]:+.2f}'
                         + (f', against the means: {swaps}; of these, separated by more than 2 SE: {separated}'
                            if swaps else ', the same order'))
        lines.append('')
    return '\n'.join(lines).strip()


def main(argv=None, defaults: dict = None, script: str = None, command: str = None) -> dict:
    """Run (or resume, report, dry-run) the study; returns dict(teacher, rows, failures, text, out) ({} for a
    dry run). The command line exits 1 when ``failures`` is not empty (:func:`cli`). ``command``: what the
    report names as the command (default: ``script`` and ``argv``)."""
    args = parse_args(argv, defaults)
    start = time.perf_counter()
    data = data_options(args) if args.dry_run or args.report else prepare_data(args)
    all_jobs = jobs(args, data, data_digest(args))
    if not args.dry_run:
        os.makedirs(args.out, exist_ok=True)
    results_file = osp.join(args.out, 'results.jsonl')
    runner = StudyRunner(jobs=args.jobs, threads=args.threads, force=args.force, dry_run=args.dry_run,
                         report=args.report, results_file=None if args.dry_run else results_file)
    records, failures = runner.run(all_jobs)
    if args.dry_run:
        return {}
    teacher = records.get(('teacher', 0))
    rows = {}
    for job in all_jobs:
        if job.method != 'teacher' and job.id in records:
            rows.setdefault(job.method, []).append(records[job.id])
    rows = {row: sorted(rows[row], key=lambda r: r['seed']) for row in all_rows(args) if row in rows}
    # results.jsonl: one line per run, rewritten in order so that a resumed study holds each run once; the runs of
    # earlier calls that this one has no record of are kept (for a tuning study, --eval-on heldout, the tuning log)
    ours = [*([teacher] if teacher else []), *(r for records_ in rows.values() for r in records_)]
    kept = rewrite_results(results_file, ours)
    if kept:
        print(f'{relpath(results_file)}: {kept} earlier record(s) of runs this call has none for (not in '
              f'{relpath(args.work_dir)}, or not among its rows / seeds) kept there, not in the table', flush=True)
    labels = {row: row_spec(args, row)[1] for row in all_rows(args)}
    bases = {row: row_spec(args, row)[2] for row in all_rows(args)}
    command = command or shlex.join(['python', script or 'tools/analysis/det_study.py', *args.argv])
    split = 'held-out training images' if args.eval_on == 'heldout' else 'validation images'
    total = time.perf_counter() - start
    fam = args.family_spec
    ranks = ranking(rows, args.seeds, labels,
                    {"the demo's rows (make demo: seed 0)": fam.demo_rows} if fam.demo_rows else None)
    text = (f'# {fam.title}\n\n'
            f'{table(teacher, rows, args.seeds, failures, labels, bases, teacher_label(args))}\n\n'
            f'COCO bbox mAP on the {args.num_heldout if args.eval_on == "heldout" else args.num_val} {split} '
            f'({args.img_size}x{args.img_size}, {args.num_classes} shape classes {", ".join(classes(args))}, '
            f'{args.num_train} training images, data seed {args.data_seed}); std: sample standard deviation over '
            f'seeds. Δ (paired): mean over the seeds both rows have of (row - reference) at the same seed ± its '
            f'standard error (sample std / sqrt(n)), n seeds; "vs base": against the row the method adds to. '
            f'last-quarter Δ: mAP change over the last quarter of the schedule (plateau check).\n\n'
            + (f'{ranks}\n\n' if ranks else '') +
            f'Command: `{command}`\n\nMachine: {machine(args.jobs, args.threads)}; the teacher: '
            f'{args.teacher_procs} process(es) together (taking {min(args.teacher_procs, args.jobs)} of the '
            f'{args.jobs} places).\n\n'
            f'Total time of this call: {total:.0f} s ({total / 60:.1f} min; runs that an earlier call finished are '
            f'reused, not counted).\n')
    with open(osp.join(args.out, 'results.md'), 'w') as f:
        f.write(text)
    print('\n' + text, flush=True)
    return dict(teacher=teacher, rows=rows, failures=failures, text=text, out=args.out)


def cli(argv=None, defaults: dict = None, script: str = None) -> dict:
    """:func:`main`, then exit status 1 if a run failed (after the table is written)."""
    result = main(argv, defaults, script)
    if result and result['failures']:
        print(f'{len(result["failures"])} run(s) failed: see the table above and their logs.', file=sys.stderr)
        sys.exit(1)
    return result
