"""What mmkd's studies share (the detection study ``det_study``, the classification study ``cls_study``).

* :class:`StudyRunner` runs :class:`Job` s, each a ``tools/train.py`` subprocess (log: ``<run>/train.log``),
  several side by side, a job after the job it needs (a student after its teacher). A run whose record
  (``<run>/study_run.json``) holds the same key and whose results are still there is not trained again, so an
  interrupted study resumes. A run that fails is listed (row, seed, log) and the others go on; the jobs that need
  it fail with it, without training.
* :func:`paired_delta`: the paired difference of a row and its reference over the seeds both have, with its
  standard error; :func:`seed_summary`: a row's mean and standard deviation over its seeds, with the seeds missing;
  :func:`rank_agreement`: how far one seed alone (a demo's runs) ranks the rows as their means over seeds do.
* :func:`rewrite_results`: a study's ``results.jsonl`` holding each run once, a run's record replaced only by a
  newer record of the same run (its :data:`FINISHED` time; the run: study, method, seed and key).
"""
import contextlib
import glob
import json
import math
import os
import os.path as osp
import platform
import shlex
import statistics
import subprocess
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RECORD = 'study_run.json'
LOCK = '.training'
FINISHED = 'finished_at'  # a record's field: when its run finished (ISO 8601, UTC), see :func:`rewrite_results`

__all__ = ['REPO', 'FINISHED', 'Job', 'StudyRunner', 'paired_delta', 'seed_summary', 'rank_agreement',
           'kendall_tau', 'format_delta', 'format_value', 'machine', 'cpu_name', 'rewrite_results', 'append_result',
           'run_identity', 'record_time', 'newer_record']


# ------------------------------------------------------------------------------------------------ statistics
def paired_delta(values: Mapping[int, float], reference: Mapping[int, float],
                 seeds: Optional[Sequence[int]] = None) -> dict:
    """The paired difference ``row - reference`` over seeds.

    ``d_s = values[s] - reference[s]`` for every seed ``s`` of ``seeds`` (default: the seeds of either) that both
    have; ``mean = sum(d_s) / n`` and the standard error ``se = sd(d) / sqrt(n)`` with the sample standard
    deviation (``n - 1`` in the denominator), ``None`` for ``n < 2`` (and ``mean`` ``None`` for ``n = 0``).

    Returns:
        dict(n, mean, se, diffs={seed: d_s}, missing=[the seeds of ``seeds`` one of the two lacks]).
    """
    seeds = sorted(set(values) | set(reference)) if seeds is None else list(seeds)
    diffs = {s: float(values[s]) - float(reference[s]) for s in seeds if s in values and s in reference}
    n = len(diffs)
    return dict(n=n, mean=statistics.fmean(diffs.values()) if n else None,
                se=statistics.stdev(diffs.values()) / math.sqrt(n) if n > 1 else None,
                diffs=diffs, missing=[s for s in seeds if s not in diffs])


def seed_summary(values: Mapping[int, float], seeds: Optional[Sequence[int]] = None) -> dict:
    """A row's ``n``, ``mean`` and sample standard deviation ``std`` (``n - 1``; ``None`` for ``n < 2``) over the
    seeds of ``seeds`` (default: its own) it has, and the ``missing`` ones."""
    seeds = sorted(values) if seeds is None else list(seeds)
    have = [float(values[s]) for s in seeds if s in values]
    return dict(n=len(have), mean=statistics.fmean(have) if have else None,
                std=statistics.stdev(have) if len(have) > 1 else None, missing=[s for s in seeds if s not in values])


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Kendall's tau-a of two equally long sequences: ``(C - D) / (n (n - 1) / 2)`` over all pairs ``i < j``,
    ``C`` the pairs both order the same way, ``D`` the pairs they order oppositely (a tie in either counts as
    neither). 1: the same order; -1: reversed. ``None`` for fewer than 2 items."""
    if len(a) != len(b):
        raise ValueError(f'kendall_tau: {len(a)} values against {len(b)}')
    n = len(a)
    if n < 2:
        return None
    products = [(a[i] - a[j]) * (b[i] - b[j]) for i in range(n) for j in range(i + 1, n)]
    return sum((p > 0) - (p < 0) for p in products) / len(products)


def rank_agreement(values: Mapping[str, Mapping[int, float]], seeds: Sequence[int]) -> dict:
    """How far each seed alone ranks the rows as their means over ``seeds`` do (a demo is one seed's runs).

    Only the rows with every seed of ``seeds`` take part (a mean over fewer seeds is not comparable). For each
    seed ``s``: Kendall's tau (:func:`kendall_tau`) between the rows' values at ``s`` and their means, the pairs
    of rows the seed orders against the means, and those of them the seeds separate: the paired Δ of the pair
    (:func:`paired_delta`) more than 2 standard errors from 0 (a swap of rows the study cannot tell apart is
    noise; a swap of separated rows is a seed that misleads).

    Returns:
        dict(order=[rows by mean, best first], left_out=[rows missing a seed],
        seeds={s: dict(tau, swapped=[(row a, row b): a above b by mean, below at s], deltas={swapped pair: its
        paired Δ a - b}, separated=[the swapped pairs whose paired Δ exceeds 2 SE])}).
    """
    seeds = list(seeds)
    rows = [r for r in values if all(s in values[r] for s in seeds)]
    means = {r: seed_summary(values[r], seeds)['mean'] for r in rows}
    order = sorted(rows, key=lambda r: -means[r])
    per_seed = {}
    for s in seeds:
        swapped = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]
                   if means[a] > means[b] and values[a][s] < values[b][s]]
        deltas = {pair: paired_delta(values[pair[0]], values[pair[1]], seeds) for pair in swapped}
        separated = [p for p, d in deltas.items() if d['se'] is not None and d['mean'] > 2 * d['se']]
        per_seed[s] = dict(tau=kendall_tau([values[r][s] for r in order], [means[r] for r in order]),
                           swapped=swapped, deltas=deltas, separated=separated)
    return dict(order=order, left_out=[r for r in values if r not in rows], seeds=per_seed)


def format_value(x: Optional[float], spec: str = '.3f', signed: bool = False) -> str:
    return 'n/a' if x is None else format(x, ('+' if signed else '') + spec)


def format_delta(delta: Optional[dict], spec: str = '.3f') -> str:
    """``+0.025 ± 0.004 (n=3)``; ``+0.025 (n=1)`` (no standard error from one seed); the seeds one side lacks
    are named (``seed 2 missing``); ``''`` for no reference."""
    if delta is None:
        return ''
    missing = f', seed{"s" if len(delta["missing"]) > 1 else ""} {", ".join(map(str, delta["missing"]))} missing' \
        if delta['missing'] else ''
    if not delta['n']:
        return f'n/a (n=0{missing})'
    se = f' ± {format(delta["se"], spec)}' if delta['se'] is not None else ''
    return f'{format(delta["mean"], "+" + spec)}{se} (n={delta["n"]}{missing})'


# ------------------------------------------------------------------------------------------------ runs
@dataclass
class Job:
    """One training run of a study.

    Args:
        method: the row's name; seed: its seed.
        cmd: the command (``[python, 'tools/train.py', config, ...]``), run from the repository root.
        work_dir: the run's folder (``train.log``, the record, mmengine's outputs).
        key: what a finished run's record must hold to be reused (JSON-able: the command, the data, the key of
            the run it needs...).
        collect: ``collect(work_dir)`` -> the finished run's results (a dict merged into its record, e.g.
            ``metric``) or ``None`` if the run is not (or no longer) complete there.
        needs: ``(method, seed)`` of the job that must succeed before this one trains (its teacher).
        info: more fields of the record (``study``, ``label``, ``config``...).
        slots: how many of the runner's side-by-side places the run takes: its processes (a distributed run of 2
            processes takes 2), capped at the runner's ``jobs``.
    """
    method: str
    seed: int
    cmd: List[str]
    work_dir: str
    key: Any
    collect: Callable[[str], Optional[dict]]
    needs: Optional[Tuple[str, int]] = None
    info: dict = field(default_factory=dict)
    slots: int = 1

    @property
    def id(self) -> Tuple[str, int]:
        return self.method, self.seed

    @property
    def log(self) -> str:
        return osp.join(self.work_dir, 'train.log')


def validation_records(work_dir: str, metric: str) -> List[dict]:
    """The records holding ``metric`` (a validation's scalars, with whatever was logged beside it, e.g. the NC
    metrics) of the newest mmengine log of ``work_dir`` (``<stamp>/vis_data/scalars.json``) that has any."""
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')), reverse=True):
        with open(path) as f:
            records = [r for r in map(json.loads, f) if metric in r]
        if records:
            return records
    return []


def last_quarter_change(records: Sequence[dict], metric: str) -> Optional[float]:
    """The plateau check: mean over runs (seeds) of ``metric`` after the last validation minus ``metric`` at the
    validation closest to 75% of the schedule (ties: the later one), from each run's ``history`` (its validation
    records, ``step`` ascending); runs with fewer than 2 validations are left out, ``None`` if none is left."""
    deltas = []
    for r in records:
        history = r['history']
        if len(history) < 2:
            continue
        target = 0.75 * history[-1]['step']
        at = min(history[:-1], key=lambda h: (abs(h['step'] - target), -h['step']))
        deltas.append(history[-1][metric] - at[metric])
    return statistics.fmean(deltas) if deltas else None


def _plain(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparing keys."""
    return json.loads(json.dumps(obj))


def relpath(path: str) -> str:
    """``path`` relative to the repository when inside it."""
    rel = osp.relpath(path, REPO)
    return path if rel.startswith('..') else rel


def now_stamp() -> str:
    """The time now as :data:`FINISHED` holds it: ISO 8601 in UTC, to the microsecond."""
    return datetime.now(timezone.utc).isoformat(timespec='microseconds')


def record_time(record: Any) -> Optional[datetime]:
    """When the run of ``record`` finished (its :data:`FINISHED`), ``None`` if it has no (readable) time."""
    stamp = record.get(FINISHED) if isinstance(record, dict) else None
    try:
        time_ = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    return time_ if time_.tzinfo else time_.replace(tzinfo=timezone.utc)


def run_identity(record: Any) -> Optional[str]:
    """The identity of the run ``record`` is a record of: its ``study``, ``method``, ``seed`` and ``key`` (the
    command with its work dir and options, the data, the key of the teacher run it needs: what the runner
    requires to reuse a run), ``None`` for a line that is no run's record (not a dict with a ``method``). Two
    records of one (method, seed) with different keys (another work dir, other options) are two runs."""
    if not isinstance(record, dict) or 'method' not in record:
        return None
    return json.dumps([record.get('study'), record['method'], record.get('seed'), record.get('key')], sort_keys=True)


def newer_record(record: dict, than: dict) -> bool:
    """Whether ``record`` may replace ``than`` (a record of the same run): not when it is older, nor when it has
    no time and ``than`` has one; two records without a time, or of the same time, count as newer."""
    mine, theirs = record_time(record), record_time(than)
    if theirs is None:
        return True
    return mine is not None and mine >= theirs


@contextlib.contextmanager
def _locked(results_file: str):
    """Hold an exclusive lock for reading and writing ``results_file`` (``flock`` on its folder; nothing where
    ``fcntl`` is missing): two studies writing the same ``--out`` take turns, so neither loses the other's
    records."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the temporary files still keep the file whole
        yield
        return
    fd = os.open(osp.dirname(osp.abspath(results_file)), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def append_result(results_file: str, record: dict) -> None:
    """Append ``record`` to ``results_file`` as one JSON line, under the lock of :func:`rewrite_results`."""
    with _locked(results_file), open(results_file, 'a') as f:
        f.write(json.dumps(record) + '\n')


def rewrite_results(results_file: str, records: Sequence[dict]) -> int:
    """Rewrite ``results_file`` (one JSON record per line) so that it holds each run once: first the records it
    already had of runs that ``records`` has none for, as they were (unfinished in this call, failed, not among
    its rows or seeds, trained in another work dir or with other options, or in a work dir that is gone), then
    ``records`` in their order.

    A run is who made the record (:func:`run_identity`: study, method, seed and the run's ``key``, so a record
    of another work dir or other options is another run, and both are kept). A record replaces one of the same
    run only if it is not older (:func:`record_time` of :data:`FINISHED`; a record without a time loses to one
    with a time): an older record of ``records`` (a ``--report`` of an older copy of the runs) leaves the newer
    one in its place, with a warning. A line that is not a run's record (not JSON, not a dict with a ``method``)
    is kept as it is. Written to a temporary file of its own in the same folder and renamed over
    ``results_file``, under a lock on the folder (:func:`_locked`), so an interruption leaves the old file whole
    and two studies sharing the file neither collide nor lose each other's records. Returns the number of
    earlier lines kept of runs that ``records`` has none for."""
    directory = osp.dirname(osp.abspath(results_file))
    with _locked(results_file):
        earlier: Dict[Any, Tuple[Any, str]] = {}  # run (or line number) -> (record, line), at its first place
        if osp.isfile(results_file):
            with open(results_file) as f:
                for number, line in enumerate(filter(str.strip, f)):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        record = None
                    run = run_identity(record)
                    run = number if run is None else run
                    if run not in earlier or newer_record(record, earlier[run][0]):
                        earlier[run] = record, line.rstrip('\n')
        ours: Dict[str, str] = {}  # this call's runs, in its order: the line each keeps
        for record in records:
            run = run_identity(record)
            line = json.dumps(record)
            if run in earlier and not newer_record(record, earlier[run][0]):
                old = earlier[run][0]
                warnings.warn(f'{osp.basename(results_file)}: {record.get("method")} seed {record.get("seed")}: '
                              f'the record of this call (finished {record.get(FINISHED) or "at an unknown time"}) '
                              f'is older than the one there (finished {old.get(FINISHED)}), which stays: this '
                              'call read an older copy of the run (e.g. a --report of an older work dir)')
                line = earlier[run][1]
            ours[run if run is not None else f'line {len(ours)}'] = line
        kept = [line for run, (_, line) in earlier.items() if run not in ours]
        fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(results_file)}.', suffix='.tmp', dir=directory)
        try:
            with os.fdopen(fd, 'w') as f:
                for line in [*kept, *ours.values()]:
                    f.write(line + '\n')
            os.replace(tmp, results_file)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise
    return len(kept)


class StudyRunner:
    """Runs a study's jobs, ``jobs`` places side by side (a job takes :attr:`Job.slots` of them) with ``threads``
    torch threads per process.

    :meth:`run` returns ``(records, failures)``: the record of every finished run by ``(method, seed)`` and one
    ``dict(method, seed, log, error)`` per failed run, in the order of the jobs. With ``dry_run`` the commands are
    printed, with ``report`` nothing trains (finished runs are read, the others said to be unfinished);
    ``force`` retrains finished runs. Each new record is appended to ``results_file`` as its run ends.
    """

    def __init__(self, jobs: int = 1, threads: int = 1, force: bool = False, dry_run: bool = False,
                 report: bool = False, results_file: Optional[str] = None, lock_wait_s: float = 30.) -> None:
        self.jobs, self.threads, self.force, self.dry_run, self.report = jobs, threads, force, dry_run, report
        self.results_file, self.lock_wait_s = results_file, lock_wait_s
        self._print_lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._print_lock:
            print(text if self.dry_run else f'[{time.strftime("%H:%M:%S")}] {text}', flush=True)

    def env(self) -> dict:
        n = str(self.threads)
        return dict(os.environ, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, PYTHONUNBUFFERED='1')

    # ---------------------------------------------------------------------------------------------- scheduling
    def run(self, jobs: Sequence[Job]) -> Tuple[Dict[Tuple[str, int], dict], List[dict]]:
        ids = [job.id for job in jobs]
        if len(set(ids)) != len(ids):
            raise ValueError(f'two jobs share a (method, seed): {ids}')
        for job in jobs:
            if job.needs is not None and job.needs not in ids:
                raise ValueError(f'{job.method} seed {job.seed} needs {job.needs}, which is not among the jobs')
        pending = list(enumerate(jobs, 1))
        outcome: Dict[Tuple[str, int], Any] = {}
        cond = threading.Condition()
        # nothing trains in a dry run or a report: one worker, so that the jobs are listed in their order
        workers = 1 if self.dry_run or self.report else max(1, min(self.jobs, len(jobs)))
        free = workers  # places not taken by a running job

        def places(job: Job) -> int:
            return min(job.slots, workers)

        def take():
            nonlocal free
            with cond:
                while pending:
                    # the first job whose prerequisite has ended (so the jobs that need none run alongside it),
                    # once it has its places: a later job does not overtake it (the teacher is not delayed)
                    ready = next((i for i, (_, job) in enumerate(pending)
                                  if job.needs is None or job.needs in outcome), None)
                    if ready is not None and places(pending[ready][1]) <= free:
                        free -= places(pending[ready][1])
                        return pending.pop(ready)
                    cond.wait()
                return None

        def work():
            nonlocal free
            while (item := take()) is not None:
                number, job = item
                progress = f'[{number}/{len(jobs)}] {job.method} seed {job.seed}'
                try:
                    result = self._run_one(job, outcome.get(job.needs) if job.needs else None, progress)
                except Exception as e:  # noqa: BLE001  (one run's fault is listed, the others go on)
                    result = self._failure(job, f'{type(e).__name__}: {e}', progress)
                with cond:
                    outcome[job.id] = result
                    free += places(job)
                    cond.notify_all()

        threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        records = {i: r for i, r in ((job.id, outcome.get(job.id)) for job in jobs) if r and 'error' not in r}
        failures = [outcome[job.id] for job in jobs if outcome.get(job.id) and 'error' in outcome[job.id]]
        return records, failures

    # ---------------------------------------------------------------------------------------------- one run
    def finished(self, job: Job) -> Optional[dict]:
        """The record of ``job`` if its run finished with the same key and its results are still there."""
        path = osp.join(job.work_dir, RECORD)
        if not osp.isfile(path):
            return None
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        if record.get('key') != _plain(job.key):
            return None
        results = job.collect(job.work_dir)
        if results is None:
            return None
        if record_time(record) is None:  # a record written before records had a time: when it was written
            record[FINISHED] = datetime.fromtimestamp(osp.getmtime(path), timezone.utc).isoformat(
                timespec='microseconds')
        return dict(record, **results)  # as read now

    def _failure(self, job: Job, error: str, progress: str) -> dict:
        self.say(f'{progress}: FAILED: {error}')
        return dict(method=job.method, seed=job.seed, log=job.log, error=error)

    def _run_one(self, job: Job, prerequisite: Optional[dict], progress: str) -> Optional[dict]:
        locked = not (self.dry_run or self.report)
        if locked:
            self._take_lock(job, progress)
        try:
            record = None if self.force else self.finished(job)
            if record is not None:
                self.say(f'{progress}: done before ({record.get("metric_name", "metric")} '
                         f'{format_value(record.get("metric"))})')
                return record
            if self.dry_run:
                self.say(f'{progress}: {shlex.join(job.cmd[1:])}')
                return None
            if self.report:
                self.say(f'{progress}: not finished')
                return None
            if job.needs is not None and (prerequisite is None or 'error' in prerequisite):
                return self._failure(job, f'not trained: {job.needs[0]} seed {job.needs[1]}, which it needs, failed',
                                     progress)
            return self._train(job, progress)
        finally:
            if locked:
                self._release_lock(job)

    def _train(self, job: Job, progress: str) -> dict:
        os.makedirs(job.work_dir, exist_ok=True)
        stale = osp.join(job.work_dir, RECORD)
        if osp.isfile(stale):
            os.remove(stale)  # a record of another key, or of a run whose results are gone
        self.say(f'{progress}: training (log: {relpath(job.log)})')
        start = time.perf_counter()
        with open(job.log, 'w') as log:
            rc = subprocess.run(job.cmd, cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - start
        results = job.collect(job.work_dir) if rc == 0 else None
        if rc or results is None:
            with open(job.log, errors='replace') as f:
                tail = ''.join(f.readlines()[-15:])
            why = f'exit code {rc}' if rc else 'it exited 0 but its results are not in its work dir'
            self.say(f'{progress}: the end of {relpath(job.log)}:\n{tail}')
            return self._failure(job, f'{why}; see {job.log}', progress)
        record = dict(job.info, method=job.method, seed=job.seed, **results, seconds=round(seconds, 1),
                      key=_plain(job.key), command=shlex.join(['python', *job.cmd[1:]]), **{FINISHED: now_stamp()})
        with open(osp.join(job.work_dir, RECORD), 'w') as f:
            json.dump(record, f, indent=1)
        if self.results_file:
            with self._print_lock:
                append_result(self.results_file, record)
        self.say(f'{progress}: {record.get("metric_name", "metric")} {format_value(record.get("metric"))} '
                 f'in {seconds:.0f} s')
        return record

    def _take_lock(self, job: Job, progress: str) -> None:
        """Wait while another live process trains in ``job.work_dir`` (its pid in ``<work_dir>/.training``), e.g.
        a second study sharing the teacher; a stale lock is taken over."""
        os.makedirs(job.work_dir, exist_ok=True)
        lock = osp.join(job.work_dir, LOCK)
        while True:
            try:
                with open(lock) as f:
                    pid = int(f.read().strip() or 0)
                if pid == os.getpid():
                    break
                os.kill(pid, 0)  # raises if no such process
            except (OSError, ValueError):
                break
            self.say(f'{progress}: another study (pid {pid}) trains in {relpath(job.work_dir)}; waiting')
            time.sleep(self.lock_wait_s)
        with open(lock, 'w') as f:
            f.write(str(os.getpid()))

    @staticmethod
    def _release_lock(job: Job) -> None:
        lock = osp.join(job.work_dir, LOCK)
        try:
            with open(lock) as f:
                mine = f.read().strip() == str(os.getpid())
            if mine:
                os.remove(lock)
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------ machine
def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine(jobs: int, threads: int) -> str:
    import torch
    return (f'{cpu_name()}, {os.cpu_count()} CPUs, {jobs} run(s) side by side x {threads} torch thread(s), '
            f'torch {torch.__version__}, python {platform.python_version()}, {time.strftime("%Y-%m-%d")}')
