"""``tools/misc/offline_install_gpu.sh``: help, argument errors and the commands of both steps (``--dry-run``)."""
import os.path as osp
import subprocess

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'misc', 'offline_install_gpu.sh')


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', SCRIPT, *args], capture_output=True, text=True, timeout=60,
                          env=dict(PATH='/usr/bin:/bin', **env))


def test_help_and_argument_errors():
    proc = _run('--help')
    assert proc.returncode == 0
    assert 'download --wheelhouse DIR' in proc.stdout and 'install --wheelhouse DIR' in proc.stdout
    assert _run().returncode == 2
    assert _run('install').returncode == 2 and '--wheelhouse DIR is required' in _run('install').stderr
    assert _run('download', '--wheelhouse', 'w', '--bogus').returncode == 2


def test_download_dry_run(tmp_path):
    proc = _run('download', '--wheelhouse', str(tmp_path / 'wh'), '--python-version', '3.10', '--dry-run')
    assert proc.returncode == 0, proc.stderr
    binary, sdist = [line for line in proc.stdout.splitlines() if ' pip download ' in line]
    for flag in ('--only-binary :all:', '--no-deps', '--python-version 3.10', '--implementation cp',
                 '--platform manylinux_2_28_x86_64', '--platform manylinux2014_x86_64'):
        assert flag in binary
    for package in ('mmengine==0.10.7', 'mmdet==3.3.0', 'mmrazor==1.0.0', 'pycocotools', 'joblib', 'addict',
                    'yapf', 'terminaltables', 'shapely', 'scipy', 'matplotlib', 'rich', 'termcolor', 'opencv-python',
                    'ordered-set', 'tomli'):
        assert f' {package} ' in f'{binary} '
    assert '--no-binary :all: --no-deps' in sdist and sdist.rstrip().endswith('mmcv==2.1.0')
    assert sdist.startswith(f'+ env PIP_CONSTRAINT={tmp_path}/wh/build-constraints.txt ')  # setuptools < 81
    assert not (tmp_path / 'wh').exists()  # dry run: nothing done


def test_download_excludes_what_the_target_already_has(tmp_path):
    proc = _run('download', '--wheelhouse', 'wh', '--exclude', 'opencv-python', '--exclude', 'scipy',
                '--exclude', 'setuptools', '--platform', 'manylinux_2_17_x86_64', '--dry-run')
    binary = next(line for line in proc.stdout.splitlines() if ' pip download ' in line) + ' '
    assert ' opencv-python ' not in binary and ' scipy ' not in binary and 'setuptools' not in binary
    assert ' shapely ' in binary and ' mmdet==3.3.0 ' in binary
    assert binary.count('--platform') == 1  # an explicit --platform replaces the default list


def test_install_dry_run(tmp_path):
    wh = str(tmp_path)
    proc = _run('install', '--wheelhouse', wh, '--python', 'py3', '--dry-run', TORCH_CUDA_ARCH_LIST='8.0', MAX_JOBS='3')
    assert proc.returncode == 0, proc.stderr
    steps = [line[2:] for line in proc.stdout.splitlines() if line.startswith('+ ')]
    assert steps[0].startswith('py3 -m pip install --no-index --no-deps ' + wh)
    # mmcv's CUDA build and mmkd: install.sh, offline (pip sees only the wheelhouse, whose mmcv sdist it builds)
    assert steps[1] == (f'env VENV=\\<prefix\\ of\\ py3\\> PIP_NO_INDEX=1 PIP_FIND_LINKS={wh} FORCE_CUDA=1 '
                        f'MMCV_WHEEL_DIR={wh} TORCH_CUDA_ARCH_LIST=8.0 MAX_JOBS=3 bash tools/misc/install.sh ')
    assert steps[2].startswith('py3 -m pip check')
    assert 'get_compiling_cuda_version' in steps[-1] and 'mmcv._ext' in steps[-1]


def test_install_refuses_a_missing_wheelhouse(tmp_path):
    proc = _run('install', '--wheelhouse', str(tmp_path), '--python', 'py3')
    assert proc.returncode == 2 and 'mmcv-2.1.0.tar.gz not found: run the download step first' in proc.stderr


def test_install_leaves_a_prebuilt_mmcv_wheel_to_install_sh(tmp_path):
    """The wheelhouse may hold an mmcv CUDA wheel built elsewhere (gpu_check.sh prepare --mmcv-wheel);
    install.sh installs it only if it was built for this machine's torch, CUDA and architectures, so the first
    pip install must not take it blindly."""
    for name in ('mmdet-3.3.0-py3-none-any.whl', 'mmcv-2.1.0-cp312-cp312-linux_x86_64.whl',
                 'yapf-0.43.0-py3-none-any.whl'):
        (tmp_path / name).write_text('')
    proc = _run('install', '--wheelhouse', str(tmp_path), '--python', 'py3', '--dry-run')
    first = next(line for line in proc.stdout.splitlines() if line.startswith('+ py3 -m pip install'))
    assert 'mmdet-3.3.0' in first and 'yapf-0.43.0' in first and 'mmcv-' not in first
    assert f'MMCV_WHEEL_DIR={tmp_path} ' in proc.stdout
