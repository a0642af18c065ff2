"""mmkd's demo and detection study on synthetic data: teacher, student baseline and distilled students.

``make demo`` runs this with its defaults: generate the synthetic COCO-format shapes (no download), train the
Faster R-CNN R50-FPN teacher of ``configs/demo/``, then the R18-FPN student alone and with ND (KD++), NC and iCD,
each evaluated with COCO bbox mAP, and print one table. With several ``--seeds`` it is the detection study
(mean and sample std over seeds, delta against the baseline). Finished runs are reused (``--force`` retrains).

    python tools/analysis/run_demo.py                                  # the demo (seed 0)
    python tools/analysis/run_demo.py --seeds 0 1 2 --methods baseline kd nd nc icd --work-dir work_dirs/det_study
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

TEACHER = 'configs/demo/faster_rcnn_r50_teacher.py'
CONFIGS = {
    'baseline': 'configs/demo/faster_rcnn_r18_baseline.py',
    'kd': 'configs/demo/faster_rcnn_r50_r18_kd.py',
    'nd': 'configs/demo/faster_rcnn_r50_r18_nd.py',
    'nc': 'configs/demo/faster_rcnn_r50_r18_nc.py',
    'icd': 'configs/demo/faster_rcnn_r50_r18_icd.py',
}
METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/synthetic_coco',
                        help='where the synthetic data is generated (the demo configs read data/synthetic_coco)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--methods', nargs='+', default=['baseline', 'nd', 'nc', 'icd'], choices=list(CONFIGS))
    parser.add_argument('--num-train', type=int, default=400, help='synthetic training images')
    parser.add_argument('--num-val', type=int, default=100, help='synthetic validation images')
    parser.add_argument('--img-size', type=int, default=128, help='synthetic image size (the configs resize to 128)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='passed to every tools/train.py run (e.g. train_cfg.max_iters=2 for a smoke run)')
    parser.add_argument('--force', action='store_true', help='retrain runs that already finished')
    return parser.parse_args()


def read_metrics(work_dir: str) -> dict:
    """The last validation metrics mmengine logged in ``work_dir`` (``<timestamp>/vis_data/scalars.json``)."""
    found = {}
    for stamp in sorted(d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d, 'vis_data'))):
        with open(osp.join(work_dir, stamp, 'vis_data', 'scalars.json')) as f:
            for line in f:
                record = json.loads(line)
                if METRICS[0] in record:
                    found = {k: record[k] for k in METRICS}
    if not found:
        raise RuntimeError(f'no {METRICS[0]} in the logs of {work_dir}')
    return found


def train(name: str, config: str, work_dir: str, options: list, step: str, force: bool) -> dict:
    """Run ``tools/train.py`` in a subprocess with a one-line progress display; returns metrics and time."""
    result_file = osp.join(work_dir, 'result.json')
    if osp.isfile(result_file) and not force:
        with open(result_file) as f:
            result = json.load(f)
        print(f'{step} {name}: reused ({result["coco/bbox_mAP"]:.3f} mAP)', flush=True)
        return result
    os.makedirs(work_dir, exist_ok=True)
    log_path = osp.join(work_dir, 'train.log')
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
    if options:
        cmd += ['--cfg-options', *options]
    start = time.time()
    shown = None
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(2)
            if progress(log_path) != shown:  # redraw the line when the run moves on
                shown = progress(log_path)
                print(f'\r{step} {name}: {shown} [{time.time() - start:.0f}s]'.ljust(100), end='', flush=True)
    print(f'\r{step} {name}: done in {time.time() - start:.0f}s'.ljust(100), flush=True)
    if proc.returncode:
        sys.exit(f'{name} failed (exit {proc.returncode}); see {log_path}:\n' + tail(log_path))
    result = dict(read_metrics(work_dir), seconds=round(time.time() - start, 1), command=' '.join(cmd))
    with open(result_file, 'w') as f:
        json.dump(result, f, indent=1)
    return result


def progress(log_path: str) -> str:
    """'iter 40/200' from the newest training log line, or the newest line's tail."""
    with open(log_path, errors='replace') as f:
        lines = [line for line in f.read().splitlines() if 'mmengine - INFO' in line]
    for line in reversed(lines):
        if 'Iter(train) [' in line:
            return 'iter ' + line.split('Iter(train) [')[1].split(']')[0].strip()
        if 'ClassMeansHook' in line or 'Iter(val)' in line:
            return line.split('INFO - ')[-1][:60]
    return 'starting'


def tail(path: str, lines: int = 30) -> str:
    with open(path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:])


def summarize(results: dict, teacher: dict, methods: list) -> str:
    def mean_std(values):
        mean = statistics.mean(values)
        return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)

    base = mean_std([r['coco/bbox_mAP'] for r in results['baseline']])[0] if 'baseline' in results else None
    rows = ['| model | seeds | bbox mAP | mAP50 | mAP75 | Δ mAP vs baseline | s / run |',
            '|---|---|---|---|---|---|---|',
            f'| teacher R50-FPN | 0 | {teacher["coco/bbox_mAP"]:.3f} | {teacher["coco/bbox_mAP_50"]:.3f} | '
            f'{teacher["coco/bbox_mAP_75"]:.3f} | | {teacher["seconds"]:.0f} |']
    for method in methods:
        runs = results[method]
        cells = [mean_std([r[k] for r in runs]) for k in METRICS]
        fmt = [f'{m:.3f} ± {s:.3f}' if len(runs) > 1 else f'{m:.3f}' for m, s in cells]
        delta = '' if base is None or method == 'baseline' else f'{cells[0][0] - base:+.3f}'
        name = 'student R18-FPN alone' if method == 'baseline' else f'R50 -> R18, {method}'
        rows.append(f'| {name} | {len(runs)} | {" | ".join(fmt)} | {delta} | '
                    f'{statistics.mean(r["seconds"] for r in runs):.0f} |')
    return '\n'.join(rows)


def main():
    args = parse_args()
    os.chdir(REPO)
    from mmkd.datasets.synthetic import generate_coco_detection
    import torch
    total = 1 + len(args.seeds) * len(args.methods)
    print(f'[data] synthetic COCO-format shapes in {args.data_root}', flush=True)
    paths = generate_coco_detection(args.data_root, num_train=args.num_train, num_val=args.num_val,
                                    img_size=args.img_size, seed=0, min_object_size=min(24, args.img_size // 2))
    data = [] if osp.abspath(args.data_root) == osp.abspath('data/synthetic_coco') else [
        f'{loader}.dataset.data_root={paths["data_root"]}/' for loader in
        ('train_dataloader', 'val_dataloader', 'test_dataloader')] + [
        f'{e}.ann_file={paths["val_ann_file"]}' for e in ('val_evaluator', 'test_evaluator')]
    data += args.cfg_options
    start = time.time()
    teacher_dir = osp.join(args.work_dir, 'faster_rcnn_r50_teacher')
    teacher = train('teacher R50-FPN', TEACHER, teacher_dir, data + ['randomness.seed=0'], f'[1/{total}]',
                    args.force)
    with open(osp.join(teacher_dir, 'last_checkpoint')) as f:
        teacher_ckpt = f.read().strip()
    results, step = {}, 1
    for seed in args.seeds:
        for method in args.methods:
            step += 1
            options = data + [f'randomness.seed={seed}']
            if method != 'baseline':
                options.append(f'model.teacher_ckpt={teacher_ckpt}')
            work_dir = osp.join(args.work_dir, f'{osp.basename(CONFIGS[method])[:-3]}', f'seed{seed}')
            results.setdefault(method, []).append(
                train(f'{method} (seed {seed})', CONFIGS[method], work_dir, options, f'[{step}/{total}]',
                      args.force))
    table = summarize(results, teacher, args.methods)
    machine = (f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, '
               f'{torch.get_num_threads()} threads')
    report = (f'# mmkd detection demo on synthetic data\n\n{table}\n\nCOCO bbox mAP on the 100 validation images '
              f'(128x128, 8 shape classes). Command: `python tools/analysis/run_demo.py '
              f'{" ".join(sys.argv[1:])}`; {machine}; total {time.time() - start:.0f}s.\n')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(report)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(teacher=teacher, students=results), f, indent=1)
    print('\n' + report)


if __name__ == '__main__':
    main()
