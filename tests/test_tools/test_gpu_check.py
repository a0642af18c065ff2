"""``tools/misc/gpu_check.sh``: the plan it prints with ``--dry-run`` (what a GPU machine would run), its
arguments, and ``prepare`` (the wheelhouse download, printed by ``offline_install_gpu.sh --dry-run``)."""
import os.path as osp
import re
import subprocess

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'misc', 'gpu_check.sh')


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', SCRIPT, *args], capture_output=True, text=True, timeout=60,
                          env=dict(PATH='/usr/bin:/bin', HOME='/nonexistent', **env))


def plan(*args: str, **env: str):
    proc = _run('run', '--dry-run', *args, **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = re.findall(r'^\+ \[([\w-]+), <= (\d+)s, > ([\w.-]+)\] (.*)$', proc.stdout, re.M)
    return {name: (int(limit), log, cmd) for name, limit, log, cmd in steps}, [s[0] for s in steps]


def test_plan_installs_offline_then_tests_benchmarks_and_trains_on_the_gpu(tmp_path):
    steps, order = plan('--out', str(tmp_path / 'res'), '--wheelhouse', 'wh', '--venv', '/tmp/v', '--python', 'py3',
                        MAX_JOBS='16')
    assert order == ['env', 'venv', 'install', 'tests', 'tests-cpu', 'bench-fp32', 'bench-amp', 'bench-reviewkdpp',
                     'demo']
    assert not (tmp_path / 'res').exists()  # a dry run writes nothing
    install = steps['install'][2]
    assert install == ('env TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 bash tools/misc/offline_install_gpu.sh install '
                       '--wheelhouse wh --python /tmp/v/bin/python ')
    assert steps['tests'][2].startswith('env PYTHONUNBUFFERED=1 /tmp/v/bin/python -m pytest tests/test_gpu ')
    assert steps['tests'][1] == 'pytest.txt' and steps['install'][1] == 'install.log'
    for mode in ('fp32', 'amp'):
        cmd = steps[f'bench-{mode}'][2]
        assert 'tools/analysis/benchmark_distill.py' in cmd
        assert ('configs/faster_rcnn_r101_r50_nd.py --device cuda --img-size 1333 800 --batch-size 2 '
                + ('--amp ' if mode == 'amp' else '') + f'--json {tmp_path}/res/bench_{mode}.json') in cmd
    # mixed precision: the benchmark's own --amp flag (no monkeypatching of its functions from a bash string)
    assert steps['bench-amp'][2].startswith('/tmp/v/bin/python tools/analysis/benchmark_distill.py ')
    assert ' --amp --json ' in steps['bench-amp'][2] and '--amp' not in steps['bench-fp32'][2]
    # the ReviewKD++ speed goal (docs/speed.md): ReviewKD++ at the same size on the GPU, its text output (no ninth file)
    assert steps['bench-reviewkdpp'][1:] == ('bench.log', (
        '/tmp/v/bin/python tools/analysis/benchmark_distill.py configs/faster_rcnn_r101_r50_reviewkdpp.py --device '
        'cuda --img-size 1333 800 --batch-size 2 --modes student teacher_fwd mmkd --op-breakdown 12 '))
    assert re.match(r'/tmp/v/bin/python tools/analysis/run_demo\.py --work-dir \S+/demo --data-root \S+/data '
                    r'--rows baseline nd --jobs 2 $', steps['demo'][2])
    # every result file is one of at most 8, in the results folder itself (what the device tool returns)
    logs = {log for _, log, _ in steps.values() if not log.endswith('.demo.log')}
    assert logs == {'env.txt', 'install.log', 'pytest.txt', 'bench.log'}


def test_budget_bounds_the_steps_and_arguments_are_checked(tmp_path):
    steps, _ = plan('--budget', '300', TORCH_CUDA_ARCH_LIST='8.0;9.0')
    assert steps['demo'][0] <= 300 - 20
    assert 'TORCH_CUDA_ARCH_LIST=8.0\\;9.0 ' in steps['install'][2]
    steps, order = plan('--steps', 'env,bench')
    assert order == ['env', 'bench-fp32', 'bench-amp', 'bench-reviewkdpp']
    for bad, message in ((['--steps', 'env,train'], "unknown step 'train'"), (['--budget', '5m'], 'whole seconds'),
                         (['--bogus'], "unknown argument '--bogus'")):
        proc = _run('run', *bad)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert _run().returncode == 2 and 'gpu_check.sh run' in _run('--help').stdout


def test_a_failed_step_is_recorded_and_the_next_steps_still_run(tmp_path):
    """--cpu runs with PY as it is; a PY that fails makes the tests and bench steps fail, one after the other,
    and the summary lists every step with its result."""
    proc = _run('run', '--cpu', '--steps', 'env,tests,bench', '--out', str(tmp_path), '--python', '/bin/false')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (tmp_path / 'summary.md').read_text()
    assert '| env | ok |' in summary
    for name in ('tests', 'bench-fp32', 'bench-amp', 'bench-reviewkdpp'):
        assert f'| {name} | FAILED (exit 1) |' in summary, summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bench.log', 'env.txt', 'pytest.txt', 'summary.md']


def test_prepare_downloads_py312_wheels_of_what_the_gpu_image_lacks():
    proc = _run('prepare', '--dry-run', '--python', 'py312', '--wheelhouse', 'wh')
    assert proc.returncode == 0, proc.stderr
    binary, sdist = [line for line in proc.stdout.splitlines() if ' pip download ' in line]
    assert binary.startswith('+ py312 -m pip download --only-binary :all: --no-deps --python-version 3.12 ')
    packages = set(binary.split(' -d wh ')[1].split())
    assert {'mmengine==0.10.7', 'mmdet==3.3.0', 'mmrazor==1.0.0', 'pycocotools', 'shapely', 'addict', 'yapf',
            'platformdirs', 'termcolor', 'terminaltables', 'ordered-set', 'setuptools\\>=77\\,\\<81'} == packages
    assert sdist.rstrip().endswith('-d wh mmcv==2.1.0')


def test_prepare_mmcv_wheel_builds_it_for_the_gpu_images_torch_in_a_build_venv():
    """Compiling mmcv's CUDA ops on the GPU machine would spend its minutes; prepare --mmcv-wheel builds
    the wheel here with install.sh (MMCV_WHEEL_DIR) for the image's Python, torch and architectures."""
    proc = _run('prepare', '--dry-run', '--python', 'py312', '--wheelhouse', 'wh', '--mmcv-wheel', '--torch', '2.11.0',
                TORCH_CUDA_ARCH_LIST='9.0')
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith('+ ')]
    assert lines[-2] == '+ py312 -m venv wh-build-venv  (if missing)'
    assert lines[-1].rstrip() == ('+ env VENV=wh-build-venv TORCH_VERSION=2.11.0 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 '
                                  'MMCV_WHEEL_DIR=wh PIP_FIND_LINKS=wh CUDA_DRIVER_CHECK=0 bash tools/misc/install.sh')
    # without the flag: the download only
    plain = _run('prepare', '--dry-run', '--python', 'py312', '--wheelhouse', 'wh').stdout
    assert 'install.sh' not in plain and ' pip download ' in plain
