"""tools/analysis/tune_teacher.py: the teacher job it trains and the table it writes (no training here)."""
import importlib.util
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location('tune_teacher', osp.join(REPO, 'tools/analysis/tune_teacher.py'))
tune_teacher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tune_teacher)


def test_teacher_job_evaluates_on_heldout(tmp_path):
    sargs = tune_teacher.study_args(3000, ['--data-seed', '1', '--num-classes', '6'], str(tmp_path))
    assert (sargs.eval_on, sargs.rows, sargs.teacher_iters, sargs.num_classes) == ('heldout', [], 3000, 6)
    assert sargs.work_dir == osp.join(str(tmp_path), 'heldout_t3000')
    job = tune_teacher.teacher_job(sargs, dict(val=['VAL_OPTION=1'], heldout=['HELDOUT_OPTION=1']))
    assert job.method == 'teacher_3000'
    assert 'HELDOUT_OPTION=1' in job.cmd and 'VAL_OPTION=1' not in job.cmd
    assert 'train_cfg.max_iters=3000' in job.cmd and 'randomness.seed=0' in job.cmd


def test_table_by_hand():
    history = [{'step': 750, 'coco/bbox_mAP': 0.2}, {'step': 1500, 'coco/bbox_mAP': 0.5},
               {'step': 2250, 'coco/bbox_mAP': 0.6}, {'step': 3000, 'coco/bbox_mAP': 0.65}]
    lines = tune_teacher.table([dict(method='teacher_3000', history=history, seconds=748.4)])
    assert lines[0].startswith('| schedule |') and lines[1] == '|---|---|---|---|'
    # the last quarter of 3000 iterations: from the validation at 2250 (0.6) to the last (0.65)
    assert lines[2] == '| teacher_3000 | 0.200, 0.500, 0.600, 0.650 | 0.050 | 748 |'


def test_the_table_holds_every_teacher_run_of_the_log(tmp_path):
    """results.md lists every teacher run in results.jsonl (several calls, e.g. another --tag, share the folder);
    lines that are not a teacher run's record are left out; no runs: nothing written."""
    import json
    runs = [dict(method='teacher_1500', history=[{'step': 1500, 'coco/bbox_mAP': 0.4}], seconds=10.0),
            dict(method='baseline', history=[{'step': 100, 'coco/bbox_mAP': 0.1}], seconds=1.0),
            dict(method='teacher_1500_lr4e-3', history=[{'step': 1500, 'coco/bbox_mAP': 0.5}], seconds=12.0)]
    (tmp_path / 'results.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in runs))
    lines = tune_teacher.write_table(str(tmp_path / 'results.jsonl'), str(tmp_path / 'results.md'))
    assert [line.split('|')[1].strip() for line in lines[2:]] == ['teacher_1500', 'teacher_1500_lr4e-3']
    assert (tmp_path / 'results.md').read_text() == '\n'.join(lines) + '\n'
    assert tune_teacher.write_table(str(tmp_path / 'none.jsonl'), str(tmp_path / 'none.md')) == []
    assert not (tmp_path / 'none.md').exists()
