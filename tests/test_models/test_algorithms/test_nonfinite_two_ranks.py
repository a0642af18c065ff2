"""Non-finite values seen by one rank only, with 2 CPU processes (gloo): every rank reaches the same verdict in the
same step. Training (DDP, float32) and ClassMeansHook's teacher pass stop on both ranks with the same
FloatingPointError and message (a rank left waiting in a collective would end with the backend's timeout error
instead), no checkpoint of the stopped step is written; under mixed precision both ranks skip the same step.
Nothing is timed.

One pair of processes runs the three scenarios in turn (a process group is slow to start on a busy machine); each
rank writes what happened to a JSON file, and the whole is bounded by a timeout (without a common verdict the rank
that saw nothing would wait in its next collective until the backend's timeout).
"""
import json
import os
import socket
import time
import traceback
import types
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT = 240  # seconds for both processes, start-up included (a loaded 2-core machine)
SCENARIOS = ('class_means', 'amp_skip', 'float32_stop')


def _build(**kwargs):
    from test_distill_base import ema_algorithm  # the tiny ClsDistill of the single-process tests
    return ema_algorithm(**kwargs)


def _class_means(rank: int, work_dir: str) -> dict:
    from mmkd.engine.hooks import ClassMeansHook
    from test_distill_base import TinyData, algorithm
    model = algorithm(class_means=dict(num_classes=5, feat_dim=64))
    model.class_means.reset()
    if rank == 1:
        model.teacher.neck.register_forward_hook(lambda module, inputs, out: out * float('nan'))
    dataloader = dict(dataset=TinyData(), sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2,
                      num_workers=0, collate_fn=dict(type='default_collate'))
    logger = types.SimpleNamespace(info=lambda msg: None, warning=lambda msg: None)
    runner = types.SimpleNamespace(model=model, logger=logger, log_dir=work_dir, seed=0,
                                   cfg=types.SimpleNamespace(train_dataloader=dataloader, filename='config.py'))
    ClassMeansHook().before_train(runner)
    return dict()


def _train(rank: int, work_dir: str, amp: bool) -> dict:
    from test_distill_base import PoisonTeacher, tiny_runner
    poison = PoisonTeacher(iters={1}, ranks={1})
    model = _build()
    optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-3))
    if amp:
        optim_wrapper['type'] = 'mmkd.CPUAmpOptimWrapper'
    runner = tiny_runner(model, work_dir, max_iters=3, optim_wrapper=optim_wrapper, hooks=[poison],
                         launcher='pytorch', cfg=dict(model_wrapper_cfg=dict(
                             type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)))
    result = dict(error=None)
    try:
        runner.train()
    except Exception as err:  # noqa: BLE001 (what each rank raised is the result)
        result.update(error=type(err).__name__, message=str(err), trace=traceback.format_exc()[-3000:])
    result.update(changed={str(k): v for k, v in poison.changed.items()}, skipped=model.nonfinite_skipped_steps,
                  checksum=float(sum(p.double().sum() for p in model.student.parameters())))
    return result


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE='2')
    torch.set_num_threads(1)
    from mmengine.registry import init_default_scope
    init_default_scope('mmkd')
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2,
                            timeout=timedelta(seconds=TIMEOUT))
    for name in SCENARIOS:
        work_dir = os.path.join(out, name)
        os.makedirs(work_dir, exist_ok=True)
        try:
            if name == 'class_means':
                result = dict(_class_means(rank, work_dir), error=None)
            else:
                result = _train(rank, work_dir, amp=name == 'amp_skip')
        except Exception as err:  # noqa: BLE001 (what each rank raised is the result)
            result = dict(error=type(err).__name__, message=str(err), trace=traceback.format_exc()[-3000:])
        with open(os.path.join(out, f'{name}_rank{rank}.json'), 'w') as f:
            json.dump(result, f)
    dist.destroy_process_group()


@pytest.fixture(scope='module')
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp('two_ranks')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    here = os.path.dirname(os.path.abspath(__file__))
    ctx = mp.get_context('spawn')
    procs = [ctx.Process(target=_rank, args=(rank, port, str(out))) for rank in (0, 1)]
    path = os.environ.get('PYTHONPATH', '')
    os.environ['PYTHONPATH'] = here + (os.pathsep + path if path else '')  # test_distill_base in the children
    try:
        for p in procs:
            p.start()
        deadline = time.time() + TIMEOUT
        for p in procs:
            p.join(max(1., deadline - time.time()))
    finally:
        os.environ['PYTHONPATH'] = path
        alive = [p for p in procs if p.is_alive()]
        for p in alive:
            p.kill()
            p.join()
    results = {}
    for name in SCENARIOS:
        for rank in (0, 1):
            f = out / f'{name}_rank{rank}.json'
            results[name, rank] = json.loads(f.read_text()) if f.exists() else None
    return results, out, bool(alive)


def both(results, name):
    r0, r1 = results[name, 0], results[name, 1]
    assert r0 is not None and r1 is not None, f'{name}: a rank did not finish in {TIMEOUT} s'
    return r0, r1


def test_class_means_pass_stops_on_both_ranks_with_one_message(two_ranks):
    results, out, _ = two_ranks
    r0, r1 = both(results, 'class_means')
    assert r0['error'] == r1['error'] == 'FloatingPointError', (r0, r1)
    assert r0['message'] == r1['message']
    assert 'batch 1 of the class-means pass are not finite' in r0['message'] and 'Seen on rank 1 of 2' in r0['message']
    assert not (out / 'class_means' / 'class_means.pth').exists()


def test_mixed_precision_skips_the_same_step_on_both_ranks(two_ranks):
    results, _, _ = two_ranks
    r0, r1 = both(results, 'amp_skip')
    assert r0['error'] is None and r1['error'] is None, (r0, r1)
    for r in (r0, r1):  # iteration 2 (index 1), NaN on rank 1 only: no update on either rank
        assert r['changed'] == {'0': True, '1': False, '2': True} and r['skipped'] == 1
    assert r0['checksum'] == r1['checksum']  # the replicas stayed identical


def test_float32_training_stops_on_both_ranks_with_one_message_and_no_checkpoint(two_ranks):
    results, out, hung = two_ranks
    r0, r1 = both(results, 'float32_stop')
    assert not hung
    assert r0['error'] == r1['error'] == 'FloatingPointError', (r0.get('trace'), r1.get('trace'))
    assert r0['message'] == r1['message']
    message = r0['message']
    assert 'at training iteration 2: teacher record' in message and 'Seen on rank 1 of 2' in message
    assert 'no checkpoint of it was written' in message
    for r in (r0, r1):
        assert r['changed'] == {'0': True}
    names = {p.name for p in (out / 'float32_stop').glob('iter_*.pth')}
    assert names == {'iter_1.pth'}
