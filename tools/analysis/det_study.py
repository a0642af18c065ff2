"""The detection study on mmkd's synthetic shapes: a Faster R-CNN R50-FPN teacher, then R18-FPN students alone,
with plain KD and with each method alone and with KD, over several seeds; COCO bbox mAP on the validation images.

    python tools/analysis/det_study.py                       # the study: 8 student rows x 3 seeds (~80 min, 2 cores)
    python tools/analysis/det_study.py --rows baseline --seeds 0 1 2 --eval-on heldout   # tune the schedule
    python tools/analysis/det_study.py --rows nd --eval-on heldout --cfg-options \\
        model.distiller.distill_losses.loss_nd.loss_weight=2.0 --work-dir work_dirs/det_tune_nd  # tune a weight

Protocol: the schedule (``configs/demo/``) was chosen on the student-alone row only and every row uses it
unchanged; a method's own weights may be tuned with ``--eval-on heldout``, which trains on the first
``--num-train`` generated training images and evaluates on the ``--num-heldout`` after them, never on the
validation images the study reports. Every run is a ``tools/train.py`` subprocess (log: ``<run>/train.log``),
``--jobs`` of them side by side with ``--threads`` torch threads each (default: two 1-thread runs, for 2 cores;
how this compares with one 2-thread run has not been measured yet). The teacher (seed 0) trains once and is
reused.
A run whose record (``<run>/study_run.json``) matches the present command is skipped, so an interrupted study
resumes; each run is appended to ``<out>/results.jsonl`` as it finishes (the format ``plot_study.py`` reads) and
the table goes to ``<out>/results.md``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = 'configs/demo'
TEACHER = 'faster_rcnn_r50_teacher.py'
# row -> (config, label)
ROWS = {
    'baseline': ('faster_rcnn_r18_baseline.py', 'student R18-FPN alone'),
    'kd': ('faster_rcnn_r50_r18_kd.py', 'KD (RoI logits)'),
    'nd_nokd': ('faster_rcnn_r50_r18_nd_nokd.py', 'ND alone'),
    'nd': ('faster_rcnn_r50_r18_nd.py', 'ND + KD (KD++)'),
    'nc_nokd': ('faster_rcnn_r50_r18_nc_nokd.py', 'NC alone [PROPOSAL]'),
    'nc': ('faster_rcnn_r50_r18_nc.py', 'NC + KD [PROPOSAL]'),
    'icd_nokd': ('faster_rcnn_r50_r18_icd_nokd.py', 'iCD-RoI alone [PROPOSAL]'),
    'icd': ('faster_rcnn_r50_r18_icd.py', 'iCD-RoI + KD [PROPOSAL]'),
}
METRIC = 'coco/bbox_mAP'
RECORD = 'study_run.json'
# mmengine's Config.fromfile resolves `mmdet::` bases through pkg_resources, which is not thread-safe: the worker
# threads parse configs one at a time
_CONFIG_LOCK = threading.Lock()


def parser(defaults: dict = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rows', nargs='*', default=list(ROWS), choices=list(ROWS),
                   help='student rows to run (none: only the teacher)')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--work-dir', default='work_dirs/det_study', help='runs go to <work-dir>/<row>/seed<S>')
    p.add_argument('--teacher-dir', help='the teacher\'s work dir (default: <work-dir>/teacher)')
    p.add_argument('--out', help='where results.jsonl / results.md go (default: <work-dir>)')
    p.add_argument('--data-root', default='data/synthetic_coco', help='synthetic data folder (generated if needed)')
    p.add_argument('--num-train', type=int, default=2000, help='training images')
    p.add_argument('--num-heldout', type=int, default=400,
                   help='generated training-distribution images kept out of training, for --eval-on heldout')
    p.add_argument('--num-val', type=int, default=300, help='validation images (the reported split)')
    p.add_argument('--img-size', type=int, default=64)
    p.add_argument('--num-classes', type=int, default=4)
    p.add_argument('--min-object-size', type=int, default=16)
    p.add_argument('--eval-on', choices=['val', 'heldout'], default='val',
                   help='heldout: evaluate on the held-out training images (for tuning; never tune on val)')
    p.add_argument('--student-iters', type=int, help='override every student row\'s max_iters (the same for all)')
    p.add_argument('--teacher-iters', type=int, help='override the teacher\'s max_iters')
    p.add_argument('--jobs', type=int, default=2, help='runs side by side')
    p.add_argument('--threads', type=int, default=1, help='torch threads per run (OMP/MKL_NUM_THREADS)')
    p.add_argument('--deterministic', action='store_true', help='mmengine randomness.deterministic=True')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                   help='passed to every student run (e.g. a loss weight while tuning on --eval-on heldout)')
    p.add_argument('--force', action='store_true', help='retrain runs that already finished')
    p.add_argument('--dry-run', action='store_true', help='print the training commands only')
    p.add_argument('--report', action='store_true',
                   help='train nothing: summarise the runs that have finished (an interrupted study) and list the rest')
    if defaults:
        p.set_defaults(**defaults)
    return p


def parse_args(argv=None, defaults: dict = None) -> argparse.Namespace:
    p = parser(defaults)
    args = p.parse_args(argv)
    for name in ('num_train', 'num_val', 'jobs', 'threads', 'student_iters', 'teacher_iters'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.eval_on == 'heldout' and args.num_heldout < 1:
        p.error('--eval-on heldout needs --num-heldout >= 1')
    args.work_dir = osp.abspath(args.work_dir)
    args.teacher_dir = osp.abspath(args.teacher_dir or osp.join(args.work_dir, 'teacher'))
    args.out = osp.abspath(args.out or args.work_dir)
    args.data_root = osp.abspath(args.data_root)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    return args


# ------------------------------------------------------------------------------------------------ data
def prepare_data(args) -> dict:
    """Generate the shapes (training + held-out images in one training split) and write the annotation files
    of the training part and the held-out part next to the generated ones; returns the data --cfg-options
    evaluating on the validation images (``'val'``) and on the held-out ones (``'heldout'``)."""
    from mmkd.datasets.synthetic import generate_coco_detection
    paths = generate_coco_detection(args.data_root, num_train=args.num_train + args.num_heldout,
                                    num_val=args.num_val, img_size=args.img_size, num_classes=args.num_classes,
                                    min_object_size=args.min_object_size, seed=0, num_workers=args.jobs)
    with open(paths['train_ann_file']) as f:
        coco = json.load(f)
    split_dir = osp.join(args.data_root, 'study_splits')
    os.makedirs(split_dir, exist_ok=True)
    files = {}
    for name, keep in (('train', lambda i: i <= args.num_train), ('heldout', lambda i: i > args.num_train)):
        ids = {im['id'] for im in coco['images'] if keep(im['id'])}
        part = dict(coco, images=[im for im in coco['images'] if im['id'] in ids],
                    annotations=[a for a in coco['annotations'] if a['image_id'] in ids])
        files[name] = osp.join(split_dir, f'instances_{name}_{args.num_train}_{args.num_heldout}.json')
        text = json.dumps(part, separators=(',', ':'))
        if not osp.isfile(files[name]) or open(files[name]).read() != text:
            with open(files[name] + '.tmp', 'w') as f:
                f.write(text)
            os.replace(files[name] + '.tmp', files[name])
    root = paths['data_root'] + '/'
    opts = [f'{loader}.dataset.data_root={root}' for loader in ('train_dataloader', 'val_dataloader',
                                                                'test_dataloader')]
    opts.append(f'train_dataloader.dataset.ann_file={files["train"]}')
    out = {}
    for split, ann, img in (('val', paths['val_ann_file'], 'images/val/'),
                            ('heldout', files['heldout'], 'images/train/')):
        out[split] = opts + [f'{loader}.dataset.{key}' for loader in ('val_dataloader', 'test_dataloader')
                             for key in (f'ann_file={ann}', f'data_prefix.img={img}')]
        out[split] += [f'{e}.ann_file={ann}' for e in ('val_evaluator', 'test_evaluator')]
    return out


# ------------------------------------------------------------------------------------------------ runs
def schedule_options(config: str, iters) -> list:
    """--cfg-options that set max_iters and scale the validation interval, LR milestones and checkpoint with it."""
    if iters is None:
        return []
    from mmengine.config import Config
    with _CONFIG_LOCK:
        cfg = Config.fromfile(osp.join(REPO, config))
    old = cfg.train_cfg.max_iters
    val_interval = max(1, cfg.train_cfg.val_interval * iters // old)
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={val_interval}',
            f'default_hooks.checkpoint.interval={iters}']
    for i, s in enumerate(cfg.param_scheduler):
        if s['type'] == 'MultiStepLR':
            milestones = ','.join(str(int(m * iters / old)) for m in s['milestones'])
            opts += [f'param_scheduler.{i}.end={iters}', f'param_scheduler.{i}.milestones=[{milestones}]']
    return opts


def val_history(work_dir: str) -> list:
    """Every validation record of the newest mmengine log of ``work_dir`` (``<stamp>/vis_data/scalars.json``).

    mmengine's ``LoggerHook`` logs validation scalars at ``step=epoch`` unless ``log_metric_by_epoch=False`` (the
    demo configs set it): under an ``IterBasedTrainLoop`` every record then says step 0. Such steps are replaced
    by the iterations they were taken at, ``k * train_cfg.val_interval`` of the config the run dumped.
    """
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')), reverse=True):
        with open(path) as f:
            records = [r for r in map(json.loads, f) if METRIC in r]
        if not records:
            continue
        if len(records) > 1 and len({r['step'] for r in records}) == 1:
            from mmengine.config import Config
            dumped = glob.glob(osp.join(work_dir, "*.py"))
            with _CONFIG_LOCK:
                interval = Config.fromfile(dumped[0]).train_cfg.val_interval
            records = [dict(r, step=(i + 1) * interval) for i, r in enumerate(records)]
        return records
    return []


def last_checkpoint(work_dir: str):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


class Study:
    """Runs the jobs (teacher first for the distillation rows), records each as it finishes."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.teacher_done = threading.Event()
        self.teacher_ckpt = None
        self.failed = []

    def env(self) -> dict:
        n = str(self.args.threads)
        return dict(os.environ, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, PYTHONUNBUFFERED='1')

    def command(self, config: str, work_dir: str, seed: int, options: list) -> list:
        cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
        if self.args.deterministic:
            options = options + ['randomness.deterministic=True']
        return cmd + ['--cfg-options', *options, f'randomness.seed={seed}']

    def say(self, text: str) -> None:
        with self.lock:
            print(f'[{time.strftime("%H:%M:%S")}] {text}', flush=True)

    def run(self, row: str, seed: int, config: str, work_dir: str, cmd: list) -> dict:
        record_file = osp.join(work_dir, RECORD)
        key = shlex.join(cmd[1:])
        if osp.isfile(record_file) and not self.args.force:
            with open(record_file) as f:
                record = json.load(f)
            if record.get('key') == key and last_checkpoint(work_dir):
                self.say(f'{row} seed {seed}: done before ({METRIC} {record["metric"]:.3f})')
                return dict(record, history=val_history(work_dir) or record['history'])  # as read now
        if self.args.dry_run:
            self.say(f'{row} seed {seed}: {key}')
            return dict(row=row, seed=seed, metric=None)
        if self.args.report:
            self.say(f'{row} seed {seed}: not finished')
            return None
        os.makedirs(work_dir, exist_ok=True)
        self.say(f'{row} seed {seed}: training (log: {osp.relpath(work_dir, REPO)}/train.log)')
        start = time.perf_counter()
        with open(osp.join(work_dir, 'train.log'), 'w') as log:
            rc = subprocess.run(cmd, cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - start
        history = val_history(work_dir)
        if rc or not history or not last_checkpoint(work_dir):
            with open(osp.join(work_dir, 'train.log'), errors='replace') as f:
                tail = ''.join(f.readlines()[-15:])
            raise RuntimeError(f'{row} seed {seed} failed (exit code {rc}); see {work_dir}/train.log:\n{tail}')
        final = history[-1]
        record = dict(study='det', method=row, label=ROWS.get(row, ('', 'teacher R50-FPN'))[1], seed=seed,
                      config=config, metric_name=METRIC, metric=final[METRIC],
                      metrics={k: v for k, v in final.items() if k.startswith(('coco/', 'nc/', 'distill/'))},
                      history=history, seconds=round(seconds, 1), key=key,
                      command=shlex.join([osp.relpath(cmd[0], REPO) if cmd[0].startswith(REPO) else 'python',
                                          *cmd[1:]]))
        with open(record_file, 'w') as f:
            json.dump(record, f, indent=1)
        with self.lock:
            with open(osp.join(self.args.out, 'results.jsonl'), 'a') as f:
                f.write(json.dumps(record) + '\n')
        self.say(f'{row} seed {seed}: {METRIC} {record["metric"]:.3f} in {seconds:.0f} s')
        return record

    def take_lock(self, lock: str) -> None:
        """Wait while another live process holds ``lock`` (a pid file), then hold it (a stale one is taken)."""
        os.makedirs(osp.dirname(lock), exist_ok=True)
        while True:
            try:
                with open(lock) as f:
                    pid = int(f.read().strip() or 0)
                os.kill(pid, 0)  # raises if no such process
            except (OSError, ValueError):
                break
            if pid == os.getpid():
                break
            self.say(f'the teacher is being trained by another study (pid {pid}, {lock}); waiting')
            time.sleep(30)
        with open(lock, 'w') as f:
            f.write(str(os.getpid()))

    def teacher(self, data_opts: list) -> dict:
        """Train the teacher (evaluated on the validation images whatever --eval-on says: it is not tuned) or
        reuse it; a second study sharing the teacher dir waits for the first instead of training it again."""
        config = f'{CONFIG_DIR}/{TEACHER}'
        opts = data_opts + schedule_options(config, self.args.teacher_iters)
        lock = osp.join(self.args.teacher_dir, '.training')
        try:
            if not (self.args.dry_run or self.args.report):
                self.take_lock(lock)
            record = self.run('teacher', 0, config, self.args.teacher_dir,
                              self.command(config, self.args.teacher_dir, 0, opts))
            self.teacher_ckpt = last_checkpoint(self.args.teacher_dir) or (
                osp.join(self.args.teacher_dir, 'iter_N.pth') if self.args.dry_run else None)
            return record
        finally:
            if not (self.args.dry_run or self.args.report) and osp.isfile(lock):
                os.remove(lock)
            self.teacher_done.set()

    def student(self, row: str, seed: int, data_opts: list) -> dict:
        config = f'{CONFIG_DIR}/{ROWS[row][0]}'
        opts = data_opts + schedule_options(config, self.args.student_iters) + list(self.args.cfg_options)
        if row != 'baseline':
            self.teacher_done.wait()
            if self.teacher_ckpt is None and self.args.report:
                return None
            if self.teacher_ckpt is None:
                raise RuntimeError(f'{row} seed {seed}: the teacher did not train')
            opts.append(f'model.teacher_ckpt={self.teacher_ckpt}')
        work_dir = osp.join(self.args.work_dir, row, f'seed{seed}')
        return self.run(row, seed, config, work_dir, self.command(config, work_dir, seed, opts))


# ------------------------------------------------------------------------------------------------ report
def mean_std(values: list) -> tuple:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def last_quarter_change(records: list) -> float:
    """Mean over seeds of (final mAP - mAP at the validation closest to 75% of the schedule)."""
    deltas = []
    for r in records:
        steps = [h['step'] for h in r['history']]
        if len(steps) < 2:
            continue
        target = 0.75 * steps[-1]
        at = min(r['history'][:-1], key=lambda h: (abs(h['step'] - target), -h['step']))  # ties: the later one
        deltas.append(r['history'][-1][METRIC] - at[METRIC])
    return statistics.fmean(deltas) if deltas else None


def table(teacher: dict, rows: dict, seeds: list) -> str:
    f3 = lambda x: 'n/a' if x is None else f'{x:.3f}'  # noqa: E731
    base = mean_std([r['metric'] for r in rows['baseline']])[0] if rows.get('baseline') else None
    kd = mean_std([r['metric'] for r in rows['kd']])[0] if rows.get('kd') else None
    head = ('| row | ' + ' | '.join(f'seed {s}' for s in seeds) +
            ' | mean ± std | Δ vs alone | Δ vs KD | mAP50 | last-quarter Δ | s / run |')
    lines = [head, '|' + '---|' * (len(seeds) + 7)]
    t = teacher
    if t is not None:
        lines.append(f'| teacher R50-FPN (seed 0) | {f3(t["metric"])} |' + ' |' * (len(seeds) - 1) +
                     f' {f3(t["metric"])} | | | {f3(t["metrics"].get("coco/bbox_mAP_50"))} | '
                     f'{f3(last_quarter_change([t]))} | {t["seconds"]:.0f} |')
    for row, records in rows.items():
        by_seed = {r['seed']: r['metric'] for r in records}
        mean, std = mean_std([r['metric'] for r in records])
        m50 = statistics.fmean(r['metrics'].get('coco/bbox_mAP_50', 0) for r in records)
        delta = lambda ref: '' if ref is None or row in ('baseline',) else f'{mean - ref:+.3f}'  # noqa: E731
        lines.append(f'| {ROWS[row][1]} | ' + ' | '.join(f3(by_seed.get(s)) for s in seeds) +
                     f' | {f3(mean)} ± {f3(std)} | {delta(base)} | {"" if row == "kd" else delta(kd)} | {f3(m50)} | '
                     f'{f3(last_quarter_change(records))} | '
                     f'{statistics.fmean(r["seconds"] for r in records):.0f} |')
    return '\n'.join(lines)


def machine(args) -> str:
    import torch
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return (f'{cpu}, {os.cpu_count()} CPUs, {args.jobs} runs side by side x {args.threads} torch thread(s), '
            f'torch {torch.__version__}, python {platform.python_version()}, {time.strftime("%Y-%m-%d")}')


def main(argv=None, defaults: dict = None, script: str = None) -> dict:
    args = parse_args(argv, defaults)
    os.chdir(REPO)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    data = prepare_data(args) if not args.dry_run else dict(val=[], heldout=[])
    study = Study(args)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        need_teacher = not args.rows or any(row != 'baseline' for row in args.rows)
        t_future = pool.submit(study.teacher, data['val']) if need_teacher else None
        # seed by seed, so that an interrupted study has every row at its first seeds
        order = sorted(((row, seed) for row in args.rows for seed in args.seeds),
                       key=lambda rs: (args.seeds.index(rs[1]), args.rows.index(rs[0])))
        futures = {rs: pool.submit(study.student, *rs, data[args.eval_on]) for rs in order}
        teacher = t_future.result() if t_future else None
        rows = {}
        for (row, seed), future in futures.items():
            rows.setdefault(row, []).append(future.result())
    if args.dry_run:
        return {}
    rows = {row: sorted((r for r in rows[row] if r), key=lambda r: r['seed']) for row in args.rows}
    rows = {row: records for row, records in rows.items() if records}
    # results.jsonl: one line per run, rewritten in order so that a resumed study holds each run once
    with open(osp.join(args.out, 'results.jsonl'), 'w') as f:
        for record in [*([teacher] if teacher else []), *(r for records in rows.values() for r in records)]:
            f.write(json.dumps(record) + '\n')
    command = shlex.join(['python', script or osp.relpath(osp.abspath(__file__), REPO), *args.argv])
    split = 'held-out training images' if args.eval_on == 'heldout' else 'validation images'
    text = (f'# Detection study on synthetic shapes\n\n{table(teacher, rows, args.seeds)}\n\n'
            f'COCO bbox mAP on the {args.num_heldout if args.eval_on == "heldout" else args.num_val} {split} '
            f'({args.img_size}x{args.img_size}, {args.num_classes} shape classes, {args.num_train} training images); '
            f'std: sample standard deviation over seeds; last-quarter Δ: mAP change over the last quarter of the '
            f'schedule (plateau check). Δ vs KD: the method\'s share beyond plain KD.\n\n'
            f'Command: `{command}`\n\nMachine: {machine(args)}; total {time.perf_counter() - start:.0f} s.\n')
    with open(osp.join(args.out, 'results.md'), 'w') as f:
        f.write(text)
    print('\n' + text, flush=True)
    return dict(teacher=teacher, rows=rows, text=text, out=args.out)


if __name__ == '__main__':
    main()
