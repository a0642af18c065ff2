"""Lets a process that never imports mmkd inherit mmkd's configs with ``_base_ = 'mmkd::configs/...'``.

mmengine 0.10.7 resolves a ``pkg::path`` base in three steps that all fail for mmkd unless patched:

1. it accepts only packages listed in its fixed table ``mmengine.config.utils.MODULE2PACKAGE``
   ("mmengine does not support to load mmkd config");
2. it locates the package with ``mmengine.utils.get_installed_path``, which joins the distribution's
   location with the package name: for an editable install (``pip install -e .``) that is site-packages, not
   the source folder, so ``.mim/`` is not found;
3. it does both while parsing the config, before any ``custom_imports`` run, so a downstream project's own
   ``tools/train.py`` gets there before mmkd could register itself.

mmkd's installation therefore adds ``mmkd-config-hook.pth`` to site-packages (see ``setup.py``). Python runs
its one line at start-up; it loads this file by path (without importing the mmkd package, so start-up stays
cheap: nothing else is imported) and calls :func:`install`, which patches the two mmengine modules right after
they are first executed. ``mmkd.compat`` applies the same patches for processes that import mmkd first.

This file must not import mmkd, torch or mmengine at module level.
"""
import importlib.abc
import importlib.util
import sys

PACKAGE = 'mmkd'


def add_to_package_table(module) -> None:
    """Register mmkd in mmengine's ``MODULE2PACKAGE`` table (idempotent)."""
    module.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)


def locate_installed_package(module) -> None:
    """Make ``get_installed_path('mmkd')`` return the folder Python imports mmkd from (idempotent)."""
    original = module.get_installed_path
    if getattr(original, '_mmkd', False):
        return

    def get_installed_path(package: str) -> str:
        if package == PACKAGE:
            spec = importlib.util.find_spec(PACKAGE)
            if spec is not None and spec.submodule_search_locations:
                return list(spec.submodule_search_locations)[0]
        return original(package)

    get_installed_path._mmkd = True
    get_installed_path.__doc__ = original.__doc__
    module.get_installed_path = get_installed_path


PATCHES = {'mmengine.config.utils': add_to_package_table, 'mmengine.utils.package_utils': locate_installed_package}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Meta-path finder that patches the modules of :data:`PATCHES` right after they are executed."""

    def find_spec(self, fullname, path=None, target=None):
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        sys.meta_path.remove(self)  # the real finders below must not come back here
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


def install() -> None:
    """Called from the ``.pth`` file at interpreter start-up."""
    if any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        return
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PatchOnImport())
