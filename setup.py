"""Installs mmkd, the way OpenMMLab packages install (``mmkd/.mim`` holds the configs and tools).

Besides the package itself, the installation adds:

* ``mmkd/.mim/configs/configs`` -> the repository's ``configs/`` folder (a symlink for editable installs, a copy
  in wheels), plus ``mmkd/.mim/model-index.yml``. mmengine resolves ``_base_ = 'mmkd::configs/<path>'`` to
  ``mmkd/.mim/configs/configs/<path>``: users write the same path as in this repository, prefixed with
  ``mmkd::`` (mmengine requires a folder after ``::``, which ``configs/`` provides).
* ``mmkd-config-hook.pth`` in site-packages: one line that lets processes which never import mmkd resolve
  ``mmkd::`` bases (see ``mmkd/_mim_hook.py``).
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = osp.dirname(osp.abspath(__file__))
PTH_NAME = 'mmkd-config-hook.pth'
PTH_LINE = (
    'import sys; exec("try:\\n import importlib.util as u\\n s = u.find_spec(\'mmkd\')\\n'
    ' p = s.submodule_search_locations[0] + \'/_mim_hook.py\'\\n'
    ' m = u.module_from_spec(u.spec_from_file_location(\'_mmkd_mim_hook\', p))\\n'
    ' m.__spec__.loader.exec_module(m)\\n m.install()\\nexcept Exception:\\n pass")\n')


def version() -> str:
    scope = {}
    with open(osp.join(HERE, 'mmkd', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension() -> None:
    """Populate ``mmkd/.mim`` (symlinks when editable, copies when building a distribution)."""
    if {'develop', 'editable_wheel'} & set(sys.argv):
        mode = 'symlink'
    elif {'sdist', 'bdist_wheel', 'build', 'install'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    mim = osp.join(HERE, 'mmkd', '.mim')
    os.makedirs(osp.join(mim, 'configs'), exist_ok=True)
    with open(osp.join(mim, 'model-index.yml'), 'w') as f:
        f.write('Import: []\n')  # no metafiles: mmengine then falls back to .mim/configs/<path>
    for src, dst in (('configs', osp.join(mim, 'configs', 'configs')), ('tools', osp.join(mim, 'tools'))):
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(osp.join(HERE, src), osp.dirname(dst)), dst)
        else:
            shutil.copytree(osp.join(HERE, src), dst, ignore=shutil.ignore_patterns('__pycache__'))


class BuildPyWithHook(build_py):
    """Puts the ``.pth`` start-up hook at the root of the wheel (site-packages)."""

    def run(self):
        super().run()
        with open(osp.join(self.build_lib, PTH_NAME), 'w') as f:
            f.write(PTH_LINE)


class EditableWheelWithHook(editable_wheel):
    """Adds the ``.pth`` start-up hook to editable installs (``pip install -e .``)."""

    def _select_strategy(self, name, tag, build_lib):
        strategy = super()._select_strategy(name, tag, build_lib)

        class WithHook:
            def __enter__(self):
                strategy.__enter__()
                return self

            def __exit__(self, *exc):
                return strategy.__exit__(*exc)

            def __call__(self, wheel, files, mapping):
                strategy(wheel, files, mapping)
                wheel.writestr(PTH_NAME, PTH_LINE)

        return WithHook()


def requirements(name: str) -> list:
    with open(osp.join(HERE, 'requirements', name)) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


add_mim_extension()
setup(
    name='mmkd',
    version=version(),
    description='ND (KD++), NC-inspired and iCD knowledge distillation for MMDetection',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',  # numba >= 0.63 (requirements/runtime.txt) supports Python 3.10 and newer
    packages=find_packages(include=['mmkd', 'mmkd.*']),
    include_package_data=True,
    package_data={'mmkd': ['.mim/model-index.yml', '.mim/configs/**/*', '.mim/tools/**/*']},
    install_requires=requirements('runtime.txt'),
    cmdclass={'build_py': BuildPyWithHook, 'editable_wheel': EditableWheelWithHook},
    zip_safe=False,
)
