"""``tools/misc/install.sh`` with ``DRY_RUN=1``: the commands it would run, decided by its real probes.

Each test gives the script a throw-away venv whose Python sees stand-in ``torch`` / ``mmcv`` packages (and this
checkout's ``mmkd``) through ``PYTHONPATH``, and stand-in ``nvcc`` toolkits on ``PATH``; nothing is installed or
built. What is checked: which CUDA compiler builds mmcv (a system toolkit of torch's CUDA major, else CUDA from
PyPI at torch's version), the architecture list, that an mmcv without CUDA ops or built for other architectures
is rebuilt without pip's wheel cache, and that a complete environment needs no command at all. A few tests run
without DRY_RUN against a stand-in ``pip`` that records its arguments and "installs" a stand-in CUDA from PyPI,
to check what the script verifies before the mmcv build (nvcc's release, the headers); a stand-in ``nvidia-smi``
reports a driver version.
"""
import json
import os
import os.path as osp
import re
import shutil
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
        def toolkit(release, cublas=False, crt=True):
            """A stand-in CUDA toolkit whose nvcc reports ``release``; returns its folder (on PATH when run)."""
            home = tmp_path / f'cuda-{release}{"" if crt else "-nocrt"}'
            (home / 'bin').mkdir(parents=True)
            (home / 'include').mkdir()
            (home / 'include' / 'cuda_runtime.h').write_text('')
            if crt:
                (home / 'include' / 'crt').mkdir()
                (home / 'include' / 'crt' / 'host_config.h').write_text('')
            if cublas:
                (home / 'include' / 'cublas_v2.h').write_text('')
            nvcc = home / 'bin' / 'nvcc'
            nvcc.write_text(f'#!/bin/sh\necho "Cuda compilation tools, release {release}, V{release}.88"\n')
            nvcc.chmod(0o755)
            return home

        @staticmethod
        def nvidia_smi(output, code=0):
            """A stand-in nvidia-smi printing ``output`` and exiting with ``code``; returns its path."""
            smi = tmp_path / f'nvidia-smi-{len(list(tmp_path.glob("nvidia-smi-*")))}'
            smi.write_text(f'#!/bin/sh\nprintf "%s\\n" {output!r}\nexit {code}\n')
            smi.chmod(0o755)
            return str(smi)

        @staticmethod
        def pip(cuda_release=None, crt=True):
            """A stand-in ``python -m pip`` that appends its arguments to ``pip.log`` and, asked for CUDA's
            compiler from PyPI, lays out ``nvidia/cu13`` in the venv as the wheels do (no executable bits) with an
            nvcc reporting ``cuda_release`` and the crt headers only if ``crt``; returns the log's path."""
            (fake / 'pip').mkdir(exist_ok=True)
            (fake / 'pip' / '__init__.py').write_text('')
            log = tmp_path / 'pip.log'
            (fake / 'pip' / '__main__.py').write_text(f"""import json, os, sys
with open({str(log)!r}, 'a') as f:
    f.write(json.dumps(sys.argv[1:]) + '\\n')
spec = {json.dumps(dict(release=cuda_release, crt=crt))!r}
spec = json.loads(spec)
if spec['release'] and any(a.startswith(('cuda-toolkit', 'nvidia-cuda-nvcc')) for a in sys.argv):
    home = os.path.join({purelib!r}, 'nvidia', 'cu13')
    for d in ('bin', 'nvvm/bin', 'include/cccl', 'lib') + (('include/crt', ) if spec['crt'] else ()):
        os.makedirs(os.path.join(home, d), exist_ok=True)
    files = {{'bin/nvcc': '#!/bin/sh\\necho "Cuda compilation tools, release %s, V%s.1"\\n' % (spec['release'],
                                                                                          spec['release']),
             'nvvm/bin/cicc': '', 'include/cuda_runtime.h': '', 'lib/libcudart.so.13': ''}}
    if spec['crt']:
        files['include/crt/host_config.h'] = ''
    for name, text in files.items():
        with open(os.path.join(home, name), 'w') as f:
            f.write(text)
""")
            return log

        @staticmethod
        def run(*toolkits, venv_path=None, **extra):
            path = ':'.join([str(t / 'bin') for t in toolkits] + ['/usr/bin', '/bin'])
            run_env = dict(PATH=path, HOME=str(tmp_path), DRY_RUN='1', PYTHONPATH=f'{fake}:{REPO}',
                           VENV=venv_path or str(venv_dir), NVIDIA_SMI=str(tmp_path / 'no-nvidia-smi'))
            run_env.update(extra)
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
    """Regression: the editable-install check once ran from / with a relative interpreter path, so it always failed and
    every run reinstalled mmkd. A venv that has everything must give an empty plan."""
    pytest.importorskip('mmengine')
    pytest.importorskip('mmdet')
    pytest.importorskip('mmrazor')
    env.torch(None)
    env.mmcv('not available')
    proc, commands = env.run(venv_path=osp.relpath(sys.prefix, REPO))  # relative to the checkout, as .venv is
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not any(' -e . ' in c for c in commands), commands
    assert re.search(r'environment ready: /\S+$', proc.stdout.strip())


def test_editable_install_of_mmkd_needs_no_index(tmp_path):
    """install.sh's own ``pip install -e .`` arguments, run for real with no package index (PIP_NO_INDEX, an
    empty find-links folder) in a venv layered on this one, as the GPU machine's offline install makes it. Without
    ``--use-pep517`` pip ran setuptools' ``develop``, which re-ran pip with build isolation and failed looking
    for ``wheel`` on an index."""
    pytest.importorskip('setuptools')
    args = re.search(r'pip_install (-e \. [^\n]*)', open(SCRIPT).read()).group(1).split()
    layered = tmp_path / 'venv'
    venv.create(layered, with_pip=False)
    python = str(layered / 'bin' / 'python')
    purelib = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                             capture_output=True, text=True, check=True).stdout.strip()
    base = [p for p in sys.path if p.endswith('-packages')]
    with open(osp.join(purelib, '_base.pth'), 'w') as f:
        f.write('\n'.join(base) + '\n')
    (tmp_path / 'no-wheels').mkdir()
    env = dict(os.environ, PIP_NO_INDEX='1', PIP_FIND_LINKS=str(tmp_path / 'no-wheels'), PIP_NO_CACHE_DIR='1',
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    proc = subprocess.run([python, '-m', 'pip', 'install', *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    origin = subprocess.run([python, '-c', 'import mmkd; print(mmkd.__file__)'], cwd='/', capture_output=True,
                            text=True, check=True).stdout.strip()
    assert osp.realpath(origin) == osp.realpath(osp.join(REPO, 'mmkd', '__init__.py'))


def pip_calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_cuda_from_pypi_is_checked_before_the_build(env):
    """Regression: after installing CUDA from PyPI the script built mmcv (25 min per architecture) without checking
    what it got. An nvcc of another release or missing crt headers now stop it before the build, with the fix."""
    env.torch('13.0')
    for release, crt, problem in (('13.1', True, 'nvcc in {home} is CUDA 13.1, torch was built with CUDA 13.0'),
                                  ('13.0', False, 'CUDA headers missing in {home}/include: crt/host_config.h')):
        log = env.pip(release, crt)
        log.unlink(missing_ok=True)
        proc, _ = env.run(FORCE_CUDA='1', CUDA_TOOLKIT='pypi', DRY_RUN='0')
        home = osp.join(env.site, 'nvidia', 'cu13')
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert problem.format(home=home) in proc.stderr and '--force-reinstall cuda-toolkit[' in proc.stderr
        calls = pip_calls(log)
        assert any(a.startswith('cuda-toolkit[') for c in calls for a in c)  # it was installed ...
        assert not any('mmcv==2.1.0' in c for c in calls), calls  # ... and nothing was built
        shutil.rmtree(home)
    log = env.pip('13.0', crt=True)
    log.unlink(missing_ok=True)
    proc, _ = env.run(FORCE_CUDA='1', CUDA_TOOLKIT='pypi', DRY_RUN='0')
    assert f'CUDA 13.0 compiler and headers from PyPI: {osp.join(env.site, "nvidia", "cu13")}' in proc.stdout
    assert any('mmcv==2.1.0' in c for c in pip_calls(log)), proc.stdout + proc.stderr  # the build ran
    assert os.access(osp.join(env.site, 'nvidia', 'cu13', 'bin', 'nvcc'), os.X_OK)  # exec bits restored


def test_system_toolkit_without_crt_headers_stops_before_the_build(env):
    env.torch('13.0')
    proc, commands = env.run(env.toolkit('13.0', crt=False), FORCE_CUDA='1')
    assert proc.returncode == 1 and 'CUDA headers missing' in proc.stderr and 'crt/host_config.h' in proc.stderr
    assert mmcv_build(commands) is None


@pytest.mark.parametrize('cuda,driver,ok', [('13.0', '575.57.08', False), ('13.0', '580.65.06', True),
                                            ('13.0', '590.10', True), ('12.8', '575.57.08', True),
                                            ('12.8', '520.1', False)])
def test_driver_too_old_for_torchs_cuda_stops_with_what_to_do(env, cuda, driver, ok):
    env.torch(cuda)
    toolkit = env.toolkit(cuda)
    smi = env.nvidia_smi(f'{driver}')
    proc, commands = env.run(toolkit, FORCE_CUDA='1', NVIDIA_SMI=smi)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f'NVIDIA driver {driver} (CUDA {cuda.split(".")[0]} needs >= ' in proc.stdout
        assert mmcv_build(commands) is not None
    else:
        assert proc.returncode == 1 and mmcv_build(commands) is None
        assert f'NVIDIA driver {driver} is older than' in proc.stderr
        assert 'CUDA_TORCH_PIP_ARGS=' in proc.stderr and 'pip uninstall -y torch' in proc.stderr
        assert 'CUDA_DRIVER_CHECK=0' in proc.stderr
        # building for another machine: the check can be skipped
        proc, commands = env.run(toolkit, FORCE_CUDA='1', NVIDIA_SMI=smi, CUDA_DRIVER_CHECK='0')
        assert proc.returncode == 0 and mmcv_build(commands) is not None


def test_driver_not_known_is_reported_and_not_fatal(env):
    """No nvidia-smi (a build machine without GPU), or one that fails (no driver loaded): the build goes on, and the
    log says which driver torch's CUDA needs."""
    env.torch('13.0')
    toolkit = env.toolkit('13.0')
    for smi, said in ((None, 'no '), (env.nvidia_smi('NVIDIA-SMI has failed', code=9), 'gives no driver version')):
        proc, commands = env.run(toolkit, FORCE_CUDA='1', **({'NVIDIA_SMI': smi} if smi else {}))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert said in proc.stdout and '580' in proc.stdout and mmcv_build(commands) is not None


def test_no_array_is_expanded_unguarded():
    """bash < 4.4 (CentOS 7: 4.2, Ubuntu 16.04: 4.3) treats "${a[@]}" of an empty array as an unbound variable under
    `set -u`, and the plain CPU path used to expand the empty CUDA_ENV that way. This machine's bash (>= 4.4) cannot
    show the failure, so the script is checked for the pattern: every array expansion must be guarded as
    ${a[@]+"${a[@]}"}, which expands to nothing on every bash version."""
    guarded = re.compile(r'\$\{(\w+)\[@\]\+"\$\{\1\[@\]\}"\}')
    text = open(SCRIPT).read()
    assert len(guarded.findall(text)) >= 2  # CUDA_ENV in the build, the PyPI package list
    unguarded = re.findall(r'\$\{\w+\[[@*]\]\}', guarded.sub('', text))
    assert not unguarded, f'arrays expanded without the ${{a[@]+"${{a[@]}}"}} guard: {unguarded}'


def test_prebuilt_mmcv_wheel_of_this_build_is_installed_instead_of_building(env, tmp_path):
    """MMCV_WHEEL_DIR: a GPU machine given a wheel built elsewhere for its torch, CUDA and architectures
    installs it and compiles nothing; a wheel recorded for another build is ignored and mmcv is built."""
    env.torch('13.0')
    env.mmcv('13.0')  # what the wheel installs (the stand-in pip installs nothing)
    toolkit = env.toolkit('13.0')
    wheels = tmp_path / 'wheelhouse'
    wheels.mkdir()
    wheel = wheels / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    wheel.write_text('')
    record = wheels / 'mmcv-build.txt'
    log = env.pip()
    record.write_text('mmcv 2.1.0 torch 2.13.0+cu130 CUDA 13.0 arch 9.0\n')
    proc, _ = env.run(toolkit, FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='9.0', MMCV_WHEEL_DIR=str(wheels), DRY_RUN='0')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = pip_calls(log)
    assert ['install', '--no-deps', '--force-reinstall', str(wheel)] in calls, calls
    assert not any('mmcv==2.1.0' in c for c in calls), calls  # nothing built
    assert (env.venv / 'mmcv-build.txt').read_text().strip() == record.read_text().strip()
    # recorded for other architectures: built, the wheel written to MMCV_WHEEL_DIR and installed from there
    (env.venv / 'mmcv-build.txt').unlink()
    log.unlink()
    proc, commands = env.run(toolkit, FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='8.0', MMCV_WHEEL_DIR=str(wheels))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no prebuilt mmcv in" in proc.stdout and "'mmcv 2.1.0 torch 2.13.0+cu130 CUDA 13.0 arch 9.0'" in proc.stdout
    build = next(c for c in commands if ' pip wheel ' in c)
    assert build.startswith(f'env CUDA_HOME={toolkit} FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=8.0 ')
    assert build.endswith(f'pip wheel --no-build-isolation --no-cache-dir --no-deps -w {wheels} mmcv==2.1.0')
    assert ' LDFLAGS=-Wl\\,--strip-debug ' in build  # no debug sections: a wheel small enough to carry
    assert f'rm -f {wheels}/mmcv-build.txt {wheel}' in commands  # the old wheel goes first (dry run: still there)
    assert any(c.endswith(f'pip install --no-deps --force-reinstall {wheel}') for c in commands), commands
    assert mmcv_build(commands) is None  # no plain `pip install mmcv` besides


def test_prebuilt_mmcv_wheel_that_does_not_import_is_rebuilt(env, tmp_path):
    env.torch('13.0')
    env.mmcv('not available')  # the installed ops have no CUDA: the prebuilt wheel is not what it says
    wheels = tmp_path / 'wheelhouse'
    wheels.mkdir()
    (wheels / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl').write_text('')
    (wheels / 'mmcv-build.txt').write_text('mmcv 2.1.0 torch 2.13.0+cu130 CUDA 13.0 arch 9.0\n')
    log = env.pip()
    proc, _ = env.run(env.toolkit('13.0'), FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST='9.0', MMCV_WHEEL_DIR=str(wheels),
                      DRY_RUN='0')
    assert 'the prebuilt mmcv does not import here' in proc.stdout, proc.stdout + proc.stderr
    assert any(c[:2] == ['wheel', '--no-build-isolation'] for c in pip_calls(log)), pip_calls(log)
