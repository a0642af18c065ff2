"""``tools/{dist,slurm}_{train,test}.sh`` pick the checkout's ``.venv`` interpreter without it being activated.

A new user who ran ``make demo`` has torch only in ``<checkout>/.venv``; the ``python`` on their PATH has none.
Each script is copied into a scratch checkout whose interpreters are stubs that record how they were called, so
the tests see exactly which interpreter the script runs, with which arguments, in milliseconds.
"""
import os
import os.path as osp
import shutil
import stat
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# name -> (arguments, the tool script it runs, the arguments that must follow it)
SCRIPTS = {
    'dist_train.sh': (['cfg.py', '2', '--amp'], 'train.py', ['cfg.py', '--launcher', 'pytorch', '--amp']),
    'dist_test.sh': (['cfg.py', 'ckpt.pth', '2', '--out', 'x.pkl'], 'test.py',
                     ['cfg.py', 'ckpt.pth', '--launcher', 'pytorch', '--out', 'x.pkl']),
    'slurm_train.sh': (['part', 'job', 'cfg.py', 'wd', '--amp'], 'train.py',
                       ['cfg.py', '--work-dir=wd', '--launcher=slurm', '--amp']),
    'slurm_test.sh': (['part', 'job', 'cfg.py', 'ckpt.pth', '--tta'], 'test.py',
                      ['cfg.py', 'ckpt.pth', '--launcher=slurm', '--tta']),
}


def _stub(path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\n' + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _recorder(path, log) -> None:
    """An executable that appends ``<its own path> <args...>`` (one per line) to ``log`` and succeeds."""
    _stub(path, f'{{ echo "$0"; for a in "$@"; do echo "$a"; done; echo ---; }} >> "{log}"\n')


@pytest.fixture
def checkout(tmp_path):
    """A scratch checkout with the four shell tools, and a PATH whose ``python`` fails (as one without torch
    does) and whose ``srun`` records its command line."""
    root = tmp_path / 'checkout'
    (root / 'tools').mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy2(osp.join(REPO, 'tools', name), root / 'tools' / name)
    bin_dir = tmp_path / 'bin'
    log = tmp_path / 'calls.log'
    _stub(bin_dir / 'python', f'echo "$0 $*" >> "{log}.path"\necho "No module named torch" >&2\nexit 1\n')
    _recorder(bin_dir / 'srun', log)
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'VIRTUAL_ENV')}
    env['PATH'] = f'{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin'
    return root, env, log


def _run(root, env, name):
    args = SCRIPTS[name][0]
    return subprocess.run(['bash', str(root / 'tools' / name), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def _calls(log) -> list:
    text = log.read_text() if log.exists() else ''
    return [c.strip('\n').split('\n') for c in text.split('---\n') if c.strip()]


@pytest.mark.parametrize('name', list(SCRIPTS))
def test_shell_tool_prefers_the_checkout_venv(checkout, name):
    root, env, log = checkout
    venv_python = root / '.venv' / 'bin' / 'python'
    _recorder(venv_python, log)
    proc = _run(root, env, name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not osp.exists(f'{log}.path'), 'the python on PATH was called although the checkout has a .venv'
    (call, ) = _calls(log)
    _, tool, tool_args = SCRIPTS[name]
    script = osp.join(str(root), 'tools', tool)
    assert script in call, call
    assert call[call.index(script) + 1:] == tool_args
    if name.startswith('dist_'):  # the interpreter itself was called
        assert call[0] == str(venv_python)
        assert call[1:3] == ['-m', 'torch.distributed.run'] and '--nproc_per_node=2' in call
    else:  # srun was called, with the interpreter it runs on every task
        assert osp.basename(call[0]) == 'srun'
        assert call[call.index(script) - 2:call.index(script)] == [str(venv_python), '-u']


def test_shell_tool_uses_python_on_path_without_a_venv(checkout):
    root, env, log = checkout
    proc = _run(root, env, 'dist_train.sh')
    assert proc.returncode != 0 and 'No module named torch' in proc.stderr  # the PATH python (the failing stub)
    assert open(f'{log}.path').read().split()[:3] == [osp.join(env['PATH'].split(os.pathsep)[0], 'python'), '-m',
                                                      'torch.distributed.run']
    proc = _run(root, env, 'slurm_test.sh')
    (call, ) = _calls(log)
    assert call[call.index(str(root / 'tools' / 'test.py')) - 2] == 'python'


def test_shell_tool_python_variable_wins(checkout, tmp_path):
    root, env, log = checkout
    _recorder(root / '.venv' / 'bin' / 'python', log)
    mine = tmp_path / 'mine' / 'python3'
    _recorder(mine, log)
    proc = _run(root, dict(env, PYTHON=str(mine)), 'dist_train.sh')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c[0] for c in _calls(log)] == [str(mine)]


@pytest.mark.skipif(not os.access(osp.join(REPO, '.venv', 'bin', 'python'), os.X_OK),
                    reason='needs the checkout .venv that `make install` creates')
def test_real_dist_train_runs_with_a_python_without_torch_on_path(checkout, free_port):
    """The real script from this checkout, with a PATH whose ``python`` lacks torch: ``train.py --help`` runs."""
    _, env, log = checkout
    env = dict(env, PORT=str(free_port), OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', 'tools/dist_train.sh', '--help', '1'], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'usage: train.py' in proc.stdout
    assert not osp.exists(f'{log}.path')
