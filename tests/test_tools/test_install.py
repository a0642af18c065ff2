"""``tools/misc/install.sh`` with ``DRY_RUN=1``: the commands it would run, decided by its real probes.

Each test gives the script a throw-away venv whose Python sees stand-in ``torch`` / ``mmcv`` packages (and this
checkout's ``mmkd``) through ``PYTHONPATH``, and stand-in ``nvcc`` toolkits on ``PATH``; nothing is installed or
built. What is checked: which CUDA compiler builds mmcv (a system toolkit of torch's CUDA major, else CUDA from
PyPI at torch's version), the architecture list, that an mmcv without CUDA ops or built for other architectures
is rebuilt without pip's wheel cache, and that a complete environment needs no command at all.
"""
import os
import os.path as osp
import re
import subprocess
import sys
import venv

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'misc', 'install.sh')
TORCH_CU130_REQUIRES = 'Requires-Dist: cuda-toolkit[cublas,cudart,cusolver]==13.0.3; platform_system == "Linux"\n'


@pytest.fixture
def env(tmp_path):
    """A venv (no pip, no packages) and a folder for stand-in packages; returns a helper to fill and run them."""
    venv_dir = tmp_path / 'venv'
    venv.create(venv_dir, with_pip=False)
    fake = tmp_path / 'site'
    fake.mkdir()
    purelib = subprocess.run([str(venv_dir / 'bin' / 'python'), '-c',
                              'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                             capture_output=True, text=True, check=True).stdout.strip()

    class Env:
        venv = venv_dir
        site = purelib

        @staticmethod
        def torch(cuda, requires=TORCH_CU130_REQUIRES, version='2.13.0'):
            (fake / 'torch').mkdir(exist_ok=True)
            (fake / 'torch' / '__init__.py').write_text(
                f'__version__ = {version + ("+cu" + cuda.replace(".", "") if cuda else "+cpu")!r}\n'
                f'from . import version\n')
            (fake / 'torch' / 'version.py').write_text(f'cuda = {cuda!r}\n')
            info = fake / f'torch-{version}.dist-info'
            info.mkdir(exist_ok=True)
            (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: torch\nVersion: {version}\n{requires}')

        @staticmethod
        def mmcv(cuda_version):
            (fake / 'mmcv' / 'ops').mkdir(parents=True, exist_ok=True)
            (fake / 'mmcv' / '__init__.py').write_text("__version__ = '2.1.0'\n")
            (fake / 'mmcv' / 'ops' / '__init__.py').write_text(
                f'def get_compiling_cuda_version():\n    return {cuda_version!r}\n')

        @staticmethod
        def toolkit(release, cublas=False):
            """A stand-in CUDA toolkit whose nvcc reports ``release``; returns its folder (on PATH when run)."""
            home = tmp_path / f'cuda-{release}'
            (home / 'bin').mkdir(parents=True)
            (home / 'include').mkdir()
            (home / 'include' / 'cuda_runtime.h').write_text('')
            if cublas:
                (home / 'include' / 'cublas_v2.h').write_text('')
            nvcc = home / 'bin' / 'nvcc'
            nvcc.write_text(f'#!/bin/sh\necho "Cuda compilation tools, release {release}, V{release}.88"\n')
            nvcc.chmod(0o755)
            return home

        @staticmethod
        def run(*toolkits, venv_path=None, **extra):
            path = ':'.join([str(t / 'bin') for t in toolkits] + ['/usr/bin', '/bin'])
            run_env = dict(PATH=path, HOME=str(tmp_path), DRY_RUN='1', PYTHONPATH=f'{fake}:{REPO}',
                           VENV=venv_path or str(venv_dir), **extra)
            proc = subprocess.run(['bash', SCRIPT], capture_output=True, text=True, timeout=120, env=run_env)
            commands = [line[2:].strip() for line in proc.stdout.splitlines() if line.startswith('+ ')]
            return proc, commands

    return Env


def mmcv_build(commands):
    builds = [c for c in commands if ' pip install --no-build-isolation ' in c and c.endswith('mmcv==2.1.0')]
    assert len(builds) <= 1, builds
    return builds[0] if builds else None


def test_system_nvcc_of_torchs_cuda_major_builds_mmcv_for_the_default_architectures(env):
    env.torch('13.0')
    env.mmcv('not available')  # a CPU-only mmcv (e.g. a wheel from pip's cache)
    toolkit = env.toolkit('13.0')
    proc, commands = env.run(toolkit, FORCE_CUDA='1')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'system CUDA 13.0 toolkit: {toolkit}' in proc.stdout
    assert not any('cuda-toolkit' in c or 'nvidia-cuda-nvcc' in c or 'torch==' in c for c in commands)
    build = mmcv_build(commands)
    assert build.startswith(f'env CUDA_HOME={toolkit} FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=8.0\\;9.0 ')
    assert '--no-cache-dir --force-reinstall --no-deps' in build  # never pip's cached CPU-only wheel
    assert f'rm -f {env.venv}/mmcv-build.txt' in commands


def test_system_toolkit_without_cublas_headers_gets_those_of_torchs_wheels(env):
    env.torch('13.0')
    include = osp.join(env.site, 'nvidia', 'cu13', 'include')
    os.makedirs(include)
    open(osp.join(include, 'cublas_v2.h'), 'w').close()
    bare, complete = env.toolkit('13.0'), env.toolkit('13.1', cublas=True)
    assert f'CPATH={include} ' in mmcv_build(env.run(bare, FORCE_CUDA='1')[1])
    assert 'CPATH=' not in mmcv_build(env.run(complete, FORCE_CUDA='1')[1])


def test_other_cuda_major_on_the_system_falls_back_to_pypi_at_torchs_version(env):
    env.torch('13.0')
    proc, commands = env.run(env.toolkit('12.4'), FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='9.0')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'is CUDA 12.4, torch needs CUDA 13: using CUDA from PyPI' in proc.stdout
    home = osp.join(env.site, 'nvidia', 'cu13')
    assert f'{env.venv}/bin/python -m pip install ' \
        'cuda-toolkit\\[nvcc\\,cccl\\,crt\\,nvvm\\,cudart\\,cublas\\,cusparse\\,cusolver\\]==13.0.3' in commands
    assert f'ln -s libcudart.so.13 {home}/lib/libcudart.so' in commands  # torch links -lcudart
    assert mmcv_build(commands).startswith(f'env CUDA_HOME={home} FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 ')
    # A torch that does not pin the cuda-toolkit meta-package: the individual wheels at its CUDA major.minor.
    env.torch('13.0', requires='')
    commands = env.run(FORCE_CUDA='1', CUDA_TOOLKIT='pypi')[1]
    assert any(c.endswith('pip install nvidia-cuda-nvcc==13.0.\\* nvidia-nvvm==13.0.\\* nvidia-cuda-crt==13.0.\\* '
                          'nvidia-cuda-cccl==13.0.\\* nvidia-cuda-runtime==13.0.\\*') for c in commands), commands


def test_cuda_toolkit_pypi_ignores_a_matching_system_nvcc_and_system_refuses_a_mismatch(env):
    env.torch('13.0')
    proc, commands = env.run(env.toolkit('13.0'), FORCE_CUDA='1', CUDA_TOOLKIT='pypi')
    assert proc.returncode == 0 and 'from PyPI' in proc.stdout
    assert mmcv_build(commands).startswith(f'env CUDA_HOME={env.site}/nvidia/cu13 ')
    proc, commands = env.run(env.toolkit('12.4'), FORCE_CUDA='1', CUDA_TOOLKIT='system')
    assert proc.returncode == 1 and 'CUDA_TOOLKIT=pypi' in proc.stderr and mmcv_build(commands) is None
    proc, _ = env.run(FORCE_CUDA='1', CUDA_TOOLKIT='conda')
    assert proc.returncode == 1 and 'use auto, system or pypi' in proc.stderr


def test_cuda_mmcv_is_kept_only_when_built_for_this_torch_and_architectures(env):
    env.torch('13.0')
    env.mmcv('13.0')
    toolkit = env.toolkit('13.0')
    stamp = env.venv / 'mmcv-build.txt'
    stamp.write_text('mmcv 2.1.0 torch 2.13.0+cu130 CUDA 13.0 arch 8.0\n')
    assert 'TORCH_CUDA_ARCH_LIST=9.0 ' in mmcv_build(env.run(toolkit, FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='9.0')[1])
    assert mmcv_build(env.run(toolkit, FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='8.0')[1]) is None
    env.mmcv('not available')  # same stamp, but the ops have no CUDA
    assert mmcv_build(env.run(toolkit, FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='8.0')[1]) is not None


def test_cpu_torch_is_replaced_by_the_cuda_build(env):
    env.torch(None)
    proc, commands = env.run(env.toolkit('13.0'), FORCE_CUDA='1')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert commands[-2:] == [f'{env.venv}/bin/python -m pip uninstall -y torch',
                             f'{env.venv}/bin/python -m pip install --isolated torch==2.13.0']
    commands = env.run(FORCE_CUDA='1', CUDA_TORCH_PIP_ARGS='--index-url https://example.invalid/cu130')[1]
    assert commands[-1].endswith('pip install --index-url https://example.invalid/cu130 torch==2.13.0')


def test_cpu_build_keeps_pips_cache_and_no_cuda_settings(env):
    env.torch(None)
    build = mmcv_build(env.run(env.toolkit('13.0'))[1])
    assert build.startswith('env MMCV_WITH_OPS=1 ') and '--no-cache-dir' not in build and 'CUDA' not in build


def test_complete_environment_needs_no_command_with_a_relative_venv(env):
    """Issue 10: the editable-install check ran from / with a relative interpreter path, so it always failed and
    every run reinstalled mmkd. A venv that has everything must give an empty plan."""
    pytest.importorskip('mmengine')
    pytest.importorskip('mmdet')
    pytest.importorskip('mmrazor')
    env.torch(None)
    env.mmcv('not available')
    proc, commands = env.run(venv_path=osp.relpath(sys.prefix, REPO))  # relative to the checkout, as .venv is
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not any(c.endswith('-e . --no-build-isolation --no-deps') for c in commands), commands
    assert re.search(r'environment ready: /\S+$', proc.stdout.strip())
