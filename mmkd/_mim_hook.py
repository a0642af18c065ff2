"""Lets a process that never imports mmkd inherit mmkd's configs with ``_base_ = 'mmkd::configs/...'``.

mmengine 0.10.7 only accepts ``pkg::`` bases for packages listed in its fixed table
``mmengine.config.utils.MODULE2PACKAGE``, and it parses the base before any ``custom_imports`` run, so a
downstream project's own ``tools/train.py`` fails with "mmengine does not support to load mmkd config" before
mmkd has a chance to register itself.

mmkd's installation therefore adds ``mmkd-config-hook.pth`` to site-packages (see ``setup.py``). Python runs
its one line at start-up; it loads this file (by path, without importing the mmkd package, so start-up stays
cheap) and calls :func:`install`, which adds ``'mmkd'`` to the table as soon as ``mmengine.config.utils`` is
imported, and does nothing else. ``mmkd.compat`` calls :func:`add_to_package_table` too, for processes that
import mmkd first.

This file must not import mmkd, torch or mmengine at module level.
"""
import importlib.abc
import importlib.util
import sys

PACKAGE = 'mmkd'
_TARGET = 'mmengine.config.utils'


def add_to_package_table(module) -> None:
    """Register mmkd in mmengine's ``MODULE2PACKAGE`` table (idempotent)."""
    module.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)


class _ConfigUtilsFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that patches ``mmengine.config.utils`` right after it is executed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps find_spec below from recursing here
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            add_to_package_table(module)

        spec.loader.exec_module = exec_and_register
        return spec


def install() -> None:
    """Called from the ``.pth`` file at interpreter start-up."""
    if _TARGET in sys.modules:
        add_to_package_table(sys.modules[_TARGET])
    elif not any(isinstance(f, _ConfigUtilsFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _ConfigUtilsFinder())
