"""mmkd.analysis.study: the paired statistics of the study tables and the runner (failures, prerequisites, resume),
the runner with stand-in jobs (a few lines of Python instead of a training run)."""
import glob
import json
import math
import os
import os.path as osp
import shutil
import sys
import threading
from datetime import datetime, timezone

import pytest

from mmkd.analysis.study import (
    FINISHED,
    REPO,
    Job,
    StudyRunner,
    format_delta,
    kendall_tau,
    paired_delta,
    rank_agreement,
    record_time,
    rewrite_results,
    seed_summary,
)


def test_paired_delta_by_hand():
    row, ref = {0: 0.30, 1: 0.35, 2: 0.32}, {0: 0.25, 1: 0.30, 2: 0.30}
    d = paired_delta(row, ref, [0, 1, 2])
    # differences 0.05, 0.05, 0.02: mean 0.04; deviations 0.01, 0.01, -0.02 -> sample variance 6e-4 / 2 = 3e-4,
    # sd 0.017320508, se = sd / sqrt(3) = 0.01
    assert d['n'] == 3 and d['missing'] == []
    assert d['diffs'] == pytest.approx({0: 0.05, 1: 0.05, 2: 0.02})
    assert d['mean'] == pytest.approx(0.04) and d['se'] == pytest.approx(0.01)
    assert format_delta(d) == '+0.040 ± 0.010 (n=3)'
    # pairing matters: the unpaired difference of means is the same, but the spread of the rows is not the SE's
    assert d['se'] < math.sqrt(seed_summary(row)['std'] ** 2 / 3 + seed_summary(ref)['std'] ** 2 / 3)


def test_paired_delta_lists_missing_seeds_and_has_no_se_from_one_seed():
    # seed 2 missing from the row: the Δ is over seeds 0 and 1 only, never over the reference's seed 2
    d = paired_delta({0: 0.40, 1: 0.50}, {0: 0.30, 1: 0.30, 2: 0.90}, [0, 1, 2])
    assert d['n'] == 2 and d['missing'] == [2]
    assert d['mean'] == pytest.approx(0.15)  # (0.10 + 0.20) / 2
    assert d['se'] == pytest.approx(0.05)  # sd of (0.10, 0.20) = 0.0707107, / sqrt(2)
    assert format_delta(d) == '+0.150 ± 0.050 (n=2, seed 2 missing)'
    one = paired_delta({1: 0.2}, {0: 0.1, 1: 0.25, 2: 0.3}, [0, 1, 2])
    assert one['n'] == 1 and one['se'] is None and one['mean'] == pytest.approx(-0.05) and one['missing'] == [0, 2]
    assert format_delta(one) == '-0.050 (n=1, seeds 0, 2 missing)'
    none = paired_delta({0: 0.2}, {1: 0.1}, [0, 1])
    assert none['n'] == 0 and none['mean'] is None and none['se'] is None and format_delta(none).startswith('n/a')
    assert format_delta(None) == ''


def test_seed_summary():
    s = seed_summary({0: 1.0, 2: 3.0}, [0, 1, 2])
    assert s == dict(n=2, mean=2.0, std=pytest.approx(math.sqrt(2)), missing=[1])
    assert seed_summary({5: 1.5}) == dict(n=1, mean=1.5, std=None, missing=[])


def test_kendall_tau_by_hand():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # pairs of [1, 3, 2] against [1, 2, 3]: (0,1) +, (0,2) +, (1,2) - -> (2 - 1) / 3
    assert kendall_tau([1, 3, 2], [1, 2, 3]) == pytest.approx(1 / 3)
    # a tie in either sequence counts as neither: (0,1) tie, (0,2) +, (1,2) + -> 2 / 3
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 3)
    assert kendall_tau([1.0], [2.0]) is None
    with pytest.raises(ValueError, match='3 values against 2'):
        kendall_tau([1, 2, 3], [1, 2])


def test_rank_agreement_names_each_seeds_swaps_and_leaves_out_rows_missing_a_seed():
    values = {'alone': {0: 0.20, 1: 0.21, 2: 0.19},
              'kd': {0: 0.19, 1: 0.30, 2: 0.28},   # mean 0.2567, below the student alone at seed 0
              'rkd': {0: 0.35, 1: 0.33, 2: 0.34},  # mean 0.34, first everywhere
              'nc': {0: 0.25, 1: 0.24}}            # seed 2 missing: not ranked
    a = rank_agreement(values, [0, 1, 2])
    assert a['order'] == ['rkd', 'kd', 'alone'] and a['left_out'] == ['nc']
    # seed 0 orders rkd > alone > kd: one of three pairs swapped -> tau (2 - 1) / 3
    assert a['seeds'][0]['swapped'] == [('kd', 'alone')] and a['seeds'][0]['tau'] == pytest.approx(1 / 3)
    # kd - alone per seed -0.01, 0.09, 0.09: mean 0.0567, se 0.0333 -> 1.7 SE, a swap of rows the seeds cannot tell
    # apart
    assert a['seeds'][0]['separated'] == []
    assert a['seeds'][0]['deltas'][('kd', 'alone')]['mean'] == pytest.approx(0.17 / 3)
    assert a['seeds'][0]['deltas'][('kd', 'alone')]['se'] == pytest.approx(0.1 / 3)
    for s in (1, 2):
        assert a['seeds'][s] == dict(tau=1.0, swapped=[], deltas={}, separated=[])
    # a steady gain at every other seed: a seed that swaps it misleads
    b = rank_agreement({'alone': {0: 0.20, 1: 0.20, 2: 0.20, 3: 0.20},
                        'kd': {0: 0.19, 1: 0.30, 2: 0.30, 3: 0.30}}, [0, 1, 2, 3])
    # kd - alone: -0.01, 0.1, 0.1, 0.1: mean 0.0725, sd 0.055, se 0.0275 -> 2.6 SE: seed 0 misleads
    assert b['seeds'][0]['swapped'] == [('kd', 'alone')] and b['seeds'][0]['separated'] == [('kd', 'alone')]


def _job(tmp_path, method, seed, code, needs=None, key='k'):
    """A stand-in run: appends to <work_dir>/calls, runs ``code`` and writes <work_dir>/result.json."""
    work_dir = str(tmp_path / method / f'seed{seed}')
    script = '; '.join(['import json, os, sys', f'wd = {work_dir!r}', 'os.makedirs(wd, exist_ok=True)',
                        "open(os.path.join(wd, 'calls'), 'a').write('x')", code,
                        f"json.dump(dict(metric=0.5 + {seed} / 10), open(os.path.join(wd, 'result.json'), 'w'))"])

    def collect(wd):
        path = osp.join(wd, 'result.json')
        return dict(metric_name='m', **json.load(open(path))) if osp.isfile(path) else None

    return Job(method, seed, [sys.executable, '-c', script], work_dir, dict(key=key), collect, needs=needs,
               info=dict(study='test'))


def _calls(tmp_path, method, seed):
    path = tmp_path / method / f'seed{seed}' / 'calls'
    return len(path.read_text()) if path.exists() else 0


def test_runner_lists_a_failure_and_finishes_the_other_runs(tmp_path, capsys):
    teacher_out = tmp_path / 'teacher' / 'seed0' / 'result.json'
    jobs = [_job(tmp_path, 'teacher', 0, 'pass'),
            _job(tmp_path, 'baseline', 0, 'sys.exit(3)'),  # fails
            _job(tmp_path, 'baseline', 1, 'pass'),
            _job(tmp_path, 'kd', 0, f'assert os.path.isfile({str(teacher_out)!r})', needs=('teacher', 0)),
            _job(tmp_path, 'nd', 0, 'pass', needs=('baseline', 0))]  # needs the failed run: not trained
    records, failures = StudyRunner(jobs=2, results_file=str(tmp_path / 'results.jsonl')).run(jobs)
    assert sorted(records) == [('baseline', 1), ('kd', 0), ('teacher', 0)]
    assert records['kd', 0]['metric'] == 0.5 and records['baseline', 1]['metric'] == pytest.approx(0.6)
    assert [(f['method'], f['seed']) for f in failures] == [('baseline', 0), ('nd', 0)]
    assert 'exit code 3' in failures[0]['error'] and failures[0]['log'] == jobs[1].log
    assert 'baseline seed 0' in failures[1]['error'] and _calls(tmp_path, 'nd', 0) == 0
    lines = [json.loads(x) for x in (tmp_path / 'results.jsonl').read_text().splitlines()]
    assert sorted((r['method'], r['seed']) for r in lines) == sorted(records)
    assert 'FAILED' in capsys.readouterr().out

    # again: the finished runs are reused, the failed ones tried again; a changed key retrains
    jobs[3] = _job(tmp_path, 'kd', 0, 'pass', needs=('teacher', 0), key='other')
    records, failures = StudyRunner(jobs=2).run(jobs)
    assert _calls(tmp_path, 'teacher', 0) == 1 and _calls(tmp_path, 'baseline', 1) == 1
    assert _calls(tmp_path, 'baseline', 0) == 2 and _calls(tmp_path, 'kd', 0) == 2
    assert len(failures) == 2 and records['kd', 0]['key'] == dict(key='other')


def test_runner_report_and_dry_run_train_nothing(tmp_path, capsys):
    jobs = [_job(tmp_path, 'teacher', 0, 'pass'), _job(tmp_path, 'kd', 0, 'pass', needs=('teacher', 0))]
    records, failures = StudyRunner(report=True).run(jobs)
    assert records == {} and failures == [] and _calls(tmp_path, 'teacher', 0) == 0
    assert capsys.readouterr().out.count('not finished') == 2
    StudyRunner(dry_run=True).run(jobs)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('[1/2] teacher seed 0: -c ') and out[1].startswith('[2/2] kd seed 0: -c ')
    assert not (tmp_path / 'teacher').exists()
    with pytest.raises(ValueError, match='not among the jobs'):
        StudyRunner().run([_job(tmp_path, 'kd', 0, 'pass', needs=('teacher', 0))])


SPAN = """
import os, time
events = os.path.join({folder!r}, 'events')
def say(what):  # one short line per O_APPEND write: the lines of the two processes never mix
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f'{{what}} {{name}}\\n'.encode())
    os.close(fd)
say('start')
time.sleep(hold)  # a run that takes a while: gives a wrong schedule the chance to show, nothing is timed
if other:  # wait for the other run to start beside this one (a guard against a wrong schedule's deadlock)
    give_up = time.monotonic() + 60
    while f'start {{other}}' not in open(events).read().split('\\n'):
        if time.monotonic() > give_up:
            say('alone')
            break
        time.sleep(0.02)
say('end')
"""


def test_runner_gives_a_multi_process_job_its_places(tmp_path):
    """A job of 2 slots (a 2-process teacher) waits until 2 places are free and no other job runs beside it; a
    later 1-slot job does not overtake it; with one place it still runs (its slots are capped). Each run writes
    its start and end into one shared file: the order of the lines shows what ran beside what, no clock is read;
    the two runs meant to run side by side each wait for the other's start."""
    span = tmp_path / 'span.py'
    span.write_text(SPAN.format(folder=str(tmp_path)))

    def code(name, hold=0.0, other=''):
        return f"name, hold, other = {name!r}, {hold}, {other!r}; exec(open({str(span)!r}).read())"

    jobs = [_job(tmp_path, 'baseline', 0, code('baseline0', hold=0.6)),
            _job(tmp_path, 'teacher', 0, code('teacher', hold=0.3)),
            _job(tmp_path, 'baseline', 1, code('baseline1', other='kd0')),
            _job(tmp_path, 'kd', 0, code('kd0', other='baseline1'), needs=('teacher', 0))]
    jobs[1].slots = 2
    records, failures = StudyRunner(jobs=2).run(jobs)
    assert failures == [] and len(records) == 4
    events = (tmp_path / 'events').read_text().splitlines()
    assert sorted(events) == sorted(f'{e} {n}' for e in ('start', 'end')
                                    for n in ('baseline0', 'teacher', 'baseline1', 'kd0')), events  # none alone
    at = {e: i for i, e in enumerate(events)}
    assert at['end teacher'] == at['start teacher'] + 1, events  # nothing started or ended beside the teacher
    assert at['end baseline0'] < at['start teacher'], events
    assert at['start baseline1'] > at['end teacher'], events  # listed after the teacher: it did not overtake it
    assert at['start kd0'] > at['end teacher'], events
    # the two jobs after the teacher ran side by side (1 slot each): each started before the other ended
    assert at['start baseline1'] < at['end kd0'] and at['start kd0'] < at['end baseline1'], events

    one = [_job(tmp_path / 'one', 'teacher', 0, 'pass')]
    one[0].slots = 2
    records, failures = StudyRunner(jobs=1).run(one)
    assert failures == [] and ('teacher', 0) in records


def test_rewrite_results_replaces_a_run_only_by_a_newer_record_of_itself(tmp_path):
    path = tmp_path / 'results.jsonl'
    old = [dict(method='kd', seed=0, metric=0.1), dict(method='nd', seed=0, metric=0.2),
           dict(method='kd', seed=1, metric=0.3), dict(method='nd', seed=0, metric=0.25)]
    path.write_text(''.join(json.dumps(r) + '\n' for r in old[:2]) + '{not json\n\n[1]\n{"x": 1}\n{"x": 2}\n'
                    + ''.join(json.dumps(r) + '\n' for r in old[2:]))
    new = [dict(method='kd', seed=1, metric=0.9), dict(method='baseline', seed=0, metric=0.5)]
    assert rewrite_results(str(path), new) == 6
    lines = path.read_text().splitlines()
    # the earlier runs this call has no record of (nd seed 0 at its first place, its latest record), the lines that
    # are no run's record as they were, then this call's records in order; kd seed 1 replaced by its newer record
    assert lines[2:6] == ['{not json', '[1]', '{"x": 1}', '{"x": 2}']
    assert [json.loads(line) for line in lines[:2] + lines[6:]] == [old[0], old[3], *new]
    assert not (tmp_path / 'results.jsonl.tmp').exists()
    assert rewrite_results(str(tmp_path / 'new.jsonl'), new) == 0
    assert [json.loads(line) for line in (tmp_path / 'new.jsonl').read_text().splitlines()] == new


def _record(method, seed, metric, key='k', finished=None, study='det'):
    record = dict(study=study, method=method, seed=seed, metric=metric, key=dict(cmd=['train.py', key]))
    return dict(record, **{FINISHED: finished}) if finished else record


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rewrite_results_never_replaces_a_newer_record_by_an_older_one(tmp_path):
    path = tmp_path / 'results.jsonl'
    newer = _record('kd', 0, 0.9, finished='2026-12-07T12:00:00.000000+00:00')
    path.write_text(json.dumps(newer) + '\n')
    older = _record('kd', 0, 0.1, finished='2026-12-07T11:00:00.000000+00:00')  # e.g. a --report of an old copy
    with pytest.warns(UserWarning, match=r'kd seed 0: the record of this call \(finished 2026-12-07T11.*older'):
        assert rewrite_results(str(path), [older]) == 0
    assert _read(path) == [newer]
    with pytest.warns(UserWarning, match='finished at an unknown time'):  # no time: loses to a record with one
        rewrite_results(str(path), [_record('kd', 0, 0.2)])
    assert _read(path) == [newer]
    # the same time (the same record read again) and a later one replace it
    again = dict(newer, metric=0.95)
    rewrite_results(str(path), [again])
    assert _read(path) == [again]
    latest = _record('kd', 0, 0.5, finished='2026-12-07T13:00:00+00:00')
    rewrite_results(str(path), [latest])
    assert _read(path) == [latest]
    # a record with a time replaces one without (written before records had a time)
    path.write_text(json.dumps(_record('kd', 0, 0.3)) + '\n')
    rewrite_results(str(path), [older])
    assert _read(path) == [older]
    assert record_time(older) == datetime(2026, 12, 7, 11, tzinfo=timezone.utc)
    assert record_time(_record('kd', 0, 0.3)) is None and record_time(dict(older, **{FINISHED: 'noon'})) is None


def test_rewrite_results_keeps_the_runs_of_one_method_and_seed_with_different_keys(tmp_path):
    path = tmp_path / 'results.jsonl'
    here = _record('kd', 0, 0.4, key='work_dirs/new', finished='2026-12-07T12:00:00+00:00')
    path.write_text(json.dumps(here) + '\n')
    # an older run in another work dir (another key): another run, kept beside it, neither replaced
    elsewhere = _record('kd', 0, 0.2, key='work_dirs/old', finished='2026-12-01T12:00:00+00:00')
    assert rewrite_results(str(path), [elsewhere]) == 1
    assert _read(path) == [here, elsewhere]
    # another study's record of the same method, seed and key is another run too
    cls = dict(here, study='cls')
    assert rewrite_results(str(path), [cls]) == 2
    assert _read(path) == [here, elsewhere, cls]


def test_rewrite_results_from_two_writers_at_once_keeps_the_file_whole_and_every_record(tmp_path):
    """Two studies sharing --out (threads here) rewrite the file side by side: no temporary file is shared (the
    fixed ``results.jsonl.tmp`` was: one writer's rename took the other's half-written file, or failed), a reader
    always finds whole JSON lines, and each writer's records are all there at the end (they take turns)."""
    path = tmp_path / 'results.jsonl'
    errors = []

    def writer(method):
        try:
            mine = []
            for seed in range(40):
                mine.append(_record(method, seed, seed / 100))
                rewrite_results(str(path), mine)
        except Exception as e:  # noqa: BLE001  (reported by the test)
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(m, )) for m in ('kd', 'nd')]
    for t in threads:
        t.start()
    reads = 0
    while any(t.is_alive() for t in threads):
        if path.exists():
            text = path.read_text()
            assert text.endswith('\n') or not text
            [json.loads(line) for line in text.splitlines()]  # whole lines only
            reads += 1
    for t in threads:
        t.join()
    assert errors == [] and reads > 0
    records = _read(path)
    assert sorted((r['method'], r['seed']) for r in records) == sorted((m, s) for m in ('kd', 'nd') for s in range(40))
    assert os.listdir(tmp_path) == ['results.jsonl']  # no temporary file left


def test_runner_records_carry_their_time_and_a_report_of_an_older_copy_does_not_replace_them(tmp_path):
    results = tmp_path / 'results.jsonl'
    job = _job(tmp_path, 'teacher', 0, 'pass')
    before = datetime.now(timezone.utc)
    records, _ = StudyRunner(results_file=str(results)).run([job])
    trained = records['teacher', 0]
    assert before <= record_time(trained) <= datetime.now(timezone.utc)
    assert _read(results) == [trained]
    # the run's record as it was before records had a time, written long ago: its time is the file's
    record_file = osp.join(job.work_dir, 'study_run.json')
    old = {k: v for k, v in trained.items() if k != FINISHED}
    with open(record_file, 'w') as f:
        json.dump(old, f)
    os.utime(record_file, (1.7e9, 1.7e9))
    reported, _ = StudyRunner(report=True).run([job])
    assert record_time(reported['teacher', 0]) == datetime.fromtimestamp(1.7e9, timezone.utc)
    with pytest.warns(UserWarning, match='older than the one there'):
        rewrite_results(str(results), [reported['teacher', 0]])
    assert _read(results) == [trained]


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(REPO, 'tools', 'analysis', 'logs', '**', 'results.jsonl'),
                                               recursive=True)), ids=lambda p: osp.relpath(p, REPO))
def test_the_committed_results_files_read_back_unchanged(tmp_path, path):
    """The studies' committed results.jsonl (each run once, with or without a time): rewriting one with no
    records, or with its own records read again (a --report of the same runs), leaves it as it was; a newer record
    of one of its runs replaces that run's record, listed as this call's."""
    copy = tmp_path / 'results.jsonl'
    shutil.copy(path, copy)
    original = copy.read_text()
    records = _read(copy)
    assert records and all({'study', 'method', 'seed', 'metric', 'key'} <= set(r) for r in records)
    assert rewrite_results(str(copy), []) == len(records)
    assert copy.read_text() == original
    assert rewrite_results(str(copy), records) == 0
    assert copy.read_text() == original
    later = max([r[FINISHED] for r in records if r.get(FINISHED)], default='2026-01-01T00:00:00+00:00')
    rerun = dict(records[0], metric=-1.0, **{FINISHED: later.replace(later[:4], str(int(later[:4]) + 1), 1)})
    assert rewrite_results(str(copy), [rerun]) == len(records) - 1
    assert _read(copy) == [*records[1:], rerun]
