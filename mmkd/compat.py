"""The only module in mmkd that patches the stack it builds on. Imported first by ``mmkd/__init__.py``.

mmkd pins the one window in which mmdet 3.3 and mmrazor 1.0 both accept mmcv (mmcv 2.1.0, mmengine 0.10.7),
but runs it on today's PyTorch, 2.6 or newer: before anything else, :func:`check_torch_version` stops ``import
mmkd`` on an older torch with one line naming the version needed (:data:`TORCH_FLOOR`). Each patch below is
idempotent, touches nothing on disk, and has a test in ``tests/test_compat.py`` that fails without it:

1. ``_alias_torch_fuser_names``: mmrazor 1.0.0 imports ``reverse2``, ``reverse3`` and
   ``reverse_sequential_wrapper2`` from ``torch.ao.quantization.fuser_method_mappings``; torch 2.x renamed them
   ``_reverse2``, ``_reverse3`` and ``_sequential_wrapper2``. The old names are added back as aliases.
2. ``_lazy_quantization_backend_configs``: ``mmrazor/structures/quantization/backend_config/mapping.py`` builds
   every quantization backend config while ``import mmrazor.models`` runs, and that code crashes on the torch 2.x
   quantization API. Distillation never uses it, so the module is replaced by one whose ``BackendConfigs`` builds
   a backend's config only when a quantizer asks for it.
3. ``_safe_checkpoint_loading``: since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and refuses
   mmengine checkpoints (they pickle ``HistoryBuffer`` and numpy arrays), which breaks ``--resume``,
   ``load_from``, ``teacher_ckpt`` and ``tools/test.py``. The few safe types those checkpoints contain are
   allow-listed with ``torch.serialization.add_safe_globals``; ``weights_only`` stays on. mmengine pickles
   ``HistoryBuffer``'s statistics methods as ``getattr(HistoryBuffer, 'mean')``: the name ``builtins.getattr``
   is bound, for unpickling only, to :func:`_history_buffer_getattr`, which fetches nothing else. Pickle
   protocol 2 (``torch.save``'s) writes an empty byte string as ``bytes()``, which numpy uses for the data of an
   empty array (e.g. the history of an empty ``HistoryBuffer``): the name ``builtins.bytes`` is bound, for
   unpickling only, to :func:`_empty_bytes`, which takes no argument and returns ``b''``. mmengine's loader for
   local files is re-registered so that a checkpoint pickling anything else is refused with an
   :class:`UnsafeCheckpointError` that names the object and says how to proceed if the file is trusted.
4. ``_config_package_table``: mmengine resolves ``_base_ = 'pkg::...'`` only for packages in its fixed
   ``MODULE2PACKAGE`` table, and finds them with ``get_installed_path``, which misses editable installs;
   ``mmkd`` is added to the table and located where Python imports it from (``mmkd/_mim_hook.py`` does the
   same at start-up for processes that never import mmkd).
5. ``_distillation_loss_detach_hook``: mmrazor renamed ``DistillationLossDetachHook(detach_epoch)`` to
   ``StopDistillHook(stop_epoch)`` before its 1.0.0 tag, but mmyolo's and mmpose's distillation configs still use
   the old name. The old name is registered in mmrazor's ``HOOKS`` as a thin subclass.
6. :func:`setup_cpu_distributed` (called by the tools, not at import): distributed training and testing on a
   machine without CUDA; :func:`finish_distributed` ends such a run cleanly (a barrier, every rank out of it, then
   destroy the group).
7. :func:`mmcv_ops_accept_bfloat16` (called by ``mmkd.CPUAmpOptimWrapper``, i.e. ``tools/train.py --amp`` on a
   machine without CUDA, not at import): mmcv 2.1.0's CPU ``nms`` and ``roi_align`` have no bfloat16 kernel.
8. ``_format_configs_once``: mmengine formats the whole config with yapf each time ``Config.pretty_text`` is read,
   and one training run reads it five times (the log, the dumped config, the visualizer's copy, ``RuntimeInfoHook``
   and the checkpoint's meta), seconds each for a distillation config; the text of unchanged content is reused.
"""
import atexit
import functools
import os.path as osp
import pickle
import re
import sys
import time
import types
from collections.abc import Mapping
from typing import Callable

import torch

#: The oldest PyTorch mmkd runs on (major, minor): ``torch.serialization.add_safe_globals`` with ``(callable,
#: name)`` pairs (patch 3) needs 2.6, ``torch.is_autocast_enabled(device_type)`` 2.4. ``setup.py``
#: (``requirements/runtime.txt``) declares the same floor.
TORCH_FLOOR = (2, 6)


def torch_version_supported(version: str) -> bool:
    """Whether a ``torch.__version__`` string (``'2.6.0'``, ``'2.1.0+cu118'``, ``'2.14.0.dev2026'``) is at least
    :data:`TORCH_FLOOR`, by its major and minor numbers (a local ``+...`` or pre-release suffix is ignored)."""
    found = re.match(r'\s*(\d+)\.(\d+)', str(version))
    if not found:
        raise ValueError(f'not a torch version: {version!r}')
    return (int(found.group(1)), int(found.group(2))) >= TORCH_FLOOR


def check_torch_version(version: str = torch.__version__) -> None:
    """Stop ``import mmkd`` on a torch older than :data:`TORCH_FLOOR`, in one line, before anything fails on it."""
    if not torch_version_supported(version):
        floor = '.'.join(map(str, TORCH_FLOOR))
        raise ImportError(f'mmkd needs torch >= {floor}, found torch {version}: install torch >= {floor} '
                          f'(e.g. pip install "torch>={floor}"), then mmcv 2.1.0 built against it.')


check_torch_version()

import torch.distributed as dist  # noqa: E402  (after the version check)

from . import _mim_hook  # noqa: E402

_MAPPING_MODULE = 'mmrazor.structures.quantization.backend_config.mapping'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside mmkd's allow-list of safe types."""


def _alias_torch_fuser_names() -> None:
    from torch.ao.quantization import fuser_method_mappings as fmm
    for old, new in (('reverse2', '_reverse2'), ('reverse3', '_reverse3'),
                     ('reverse_sequential_wrapper2', '_sequential_wrapper2')):
        if not hasattr(fmm, old) and hasattr(fmm, new):
            setattr(fmm, old, getattr(fmm, new))


class _LazyBackendConfigs(Mapping):
    """``BackendConfigs`` of mmrazor, with each backend's config built on first access."""

    _builders = dict(academic='get_academic_backend_config', native='get_native_backend_config',
                     tensorrt='get_tensorrt_backend_config', openvino='get_openvino_backend_config')

    def __init__(self) -> None:
        self._cache = {}

    def __getitem__(self, backend: str):
        if backend not in self._cache:
            import importlib
            module = importlib.import_module(f'mmrazor.structures.quantization.backend_config.{backend}')
            self._cache[backend] = getattr(module, self._builders[backend])()
        return self._cache[backend]

    def __iter__(self):
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


def _lazy_quantization_backend_configs() -> None:
    if _MAPPING_MODULE in sys.modules:
        return
    module = types.ModuleType(_MAPPING_MODULE, 'Lazy stand-in installed by mmkd.compat (patch 2).')
    module.BackendConfigs = _LazyBackendConfigs()
    sys.modules[_MAPPING_MODULE] = module


def checkpoint_safe_globals() -> list:
    """The types mmengine/mmdet/mmrazor checkpoints pickle besides tensors and builtin containers."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    reconstruct = getattr(np, '_core', getattr(np, 'core', None)).multiarray._reconstruct
    scalar = getattr(np, '_core', getattr(np, 'core', None)).multiarray.scalar
    dtype_classes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith('DType')]
    return [HistoryBuffer, reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def _history_buffer_getattr(obj, name: str):
    """What ``builtins.getattr`` means inside a checkpoint: only ``HistoryBuffer``'s public methods."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_') \
            and callable(getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'GLOBAL builtins.getattr applied to {type(obj).__name__}.{name}')


def _empty_bytes(*args) -> bytes:
    """What ``builtins.bytes`` means inside a checkpoint: only ``bytes()``, the empty byte string (pickle
    protocol 2 writes ``b''`` so; non-empty ones go through the allowed ``_codecs.encode``)."""
    if args:
        raise pickle.UnpicklingError(f'GLOBAL builtins.bytes called with {len(args)} argument(s); only bytes() '
                                     '(an empty byte string) is allowed')
    return b''


def load_from_local(filename: str, map_location=None):
    """mmengine's local-file checkpoint loader, with ``weights_only=True`` and a clear refusal message."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r'GLOBAL (\S+)', str(err))
        what = found.group(1) if found else 'an object that is not a tensor or a plain container'
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {filename!r}: it contains a pickled {what}, which is not on mmkd\'s '
            f'allow-list of safe checkpoint types (tensors, containers, numpy arrays, mmengine HistoryBuffer). '
            f'Unpickling it could run arbitrary code. If you trust this file, allow that one type before '
            f'loading: torch.serialization.add_safe_globals([<the class {what}>]) (e.g. in a custom_imports '
            f'module), or re-save the checkpoint with only its state_dict and meta.') from err


def _safe_checkpoint_loading() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    torch.serialization.add_safe_globals(
        [*checkpoint_safe_globals(), (_history_buffer_getattr, 'builtins.getattr'), (_empty_bytes, 'builtins.bytes')])
    if CheckpointLoader._schemes.get('') is not load_from_local:
        CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def _config_package_table() -> None:
    import mmengine.utils
    from mmengine.config import config, utils
    from mmengine.utils import package_utils
    _mim_hook.add_to_package_table(utils)
    _mim_hook.locate_installed_package(package_utils)
    for module in (mmengine.utils, config):  # modules that imported the name before the patch
        module.get_installed_path = package_utils.get_installed_path


def _distillation_loss_detach_hook() -> None:
    from mmrazor.engine.hooks import StopDistillHook
    from mmrazor.registry import HOOKS

    if 'DistillationLossDetachHook' in HOOKS.module_dict:
        return

    class DistillationLossDetachHook(StopDistillHook):
        """mmrazor's pre-1.0 name of ``StopDistillHook``: stops distillation from ``detach_epoch`` on."""

        def __init__(self, detach_epoch: int) -> None:
            super().__init__(stop_epoch=detach_epoch)

    HOOKS.register_module(module=DistillationLossDetachHook)


def setup_cpu_distributed(cfg) -> None:
    """Patch 6, applied by ``tools/train.py`` and ``tools/test.py`` (not at import): make a distributed launch
    work on a machine without CUDA (``tools/dist_train.sh CONFIG 2`` on a CPU).

    mmdet's configs ask for the ``nccl`` backend, which needs GPUs: switch it
    to ``gloo``. mmengine's ``init_dist`` calls ``torch.cuda.set_device``
    (an error on CPU-only torch builds), so the process group is initialised
    here with that call disabled; the Runner then finds it initialised. DDP
    takes no ``device_ids`` for CPU modules, so a DDP ``model_wrapper_cfg``
    gets ``device_ids=None`` (otherwise mmengine passes ``[LOCAL_RANK]``).
    """
    from mmengine.config import ConfigDict
    from mmengine.dist import init_dist
    from mmengine.logging import print_log
    from mmengine.registry import MODEL_WRAPPERS
    from mmengine.utils.dl_utils import set_multi_processing
    from torch.nn.parallel import DistributedDataParallel
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        print_log(
            'CUDA is not available: switching the distributed backend '
            'from nccl to gloo.',
            logger='current')
        dist_cfg.backend = 'gloo'
    # same order as Runner.setup_env (avoids a start-method warning)
    set_multi_processing(**env_cfg.get('mp_cfg', {}), distributed=True)
    set_device, torch.cuda.set_device = torch.cuda.set_device, lambda _: None
    try:
        init_dist(cfg.launcher, **dist_cfg)
    finally:
        torch.cuda.set_device = set_device
    # A fallback for runs that end by an exception: the tools call finish_distributed() on success. Without a
    # destroy_process_group, gloo's threads can abort the process at interpreter exit ("terminate called without
    # an active exception") after training has finished.
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper = cfg.model_wrapper_cfg.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper, str):
        wrapper = MODEL_WRAPPERS.get(wrapper)
    if wrapper is not None and issubclass(wrapper, DistributedDataParallel):
        cfg.model_wrapper_cfg.setdefault('device_ids', None)


def finish_distributed(timeout: float = 600.0) -> None:
    """The end of patch 6, called by ``tools/train.py`` and ``tools/test.py`` after the run: every rank waits until
    every rank has *finished* a barrier, then destroys the process group while the interpreter is fully alive.

    An ``atexit`` destroy alone was not enough: a rank that tore its group down at exit while another still held
    pending gloo work aborted with ``terminate called without an active exception`` (SIGABRT, exit status -6)
    after a finished two-process run, so ``dist_train.sh`` failed at random although training had succeeded. A
    gloo barrier alone narrowed that but did not close it (seen once more on a loaded 2-core machine: rank 1
    aborted after a finished run); the window left, as far as we know, is that one rank can return from the
    barrier while another is still completing it. So
    after the barrier each rank counts itself in on the group's store (not gloo) and destroys its group only when
    every rank has counted in, i.e. has returned from the barrier (a store that stops answering means the ranks
    that host it are done: go on). No-op outside a distributed run.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    try:
        store, world = dist.distributed_c10d._get_default_store(), dist.get_world_size()
        arrived = store.add('mmkd/finished', 1)
        target = -(-arrived // world) * world  # this generation's count, should the store outlive the group
        deadline = time.monotonic() + timeout
        while store.add('mmkd/finished', 0) < target and time.monotonic() < deadline:
            time.sleep(0.02)
    except (RuntimeError, ValueError, OSError):
        pass
    dist.destroy_process_group()


def has_bf16(args) -> bool:
    return any(isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 for a in args)


def to_float(args) -> tuple:
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def _float_inputs(forward: Callable) -> Callable:
    """Wrap an mmcv ``autograd.Function.forward``: when a tensor argument is bfloat16, every floating tensor
    argument arrives as float32 and a floating output goes back to bfloat16 (the caller's type)."""
    if getattr(forward, '_mmkd_float_inputs', False):
        return forward

    @functools.wraps(forward)
    def wrapped(ctx, *args, **kwargs):
        if not has_bf16(args):
            return forward(ctx, *args, **kwargs)
        out = forward(ctx, *to_float(args), **kwargs)
        return out.to(torch.bfloat16) if isinstance(out, torch.Tensor) and out.is_floating_point() else out

    wrapped._mmkd_float_inputs = True
    return wrapped


def mmcv_ops_accept_bfloat16() -> None:
    """Let mmcv's ``nms`` and ``roi_align`` take bfloat16 inputs on the CPU (idempotent).

    mmcv 2.1.0's CPU kernels of these ops dispatch on float32/float64/float16 only, and ``nms`` needs boxes and
    scores of one type; under CPU autocast, convolution outputs (scores, feature maps) are bfloat16 while decoded
    boxes are float32, so Faster R-CNN stops with ``expected scalar type Float but found BFloat16``. With any
    bfloat16 input the ops' **forward** computes in float32 (a floating output is returned as bfloat16). Inputs
    without bfloat16 pass through untouched.

    The backward is not patched: ``roi_align``'s backward receives the bfloat16 gradient of its output, and
    mmcv's CPU ``roi_align_backward`` has no bfloat16 kernel, so it raises (``NotImplementedError:
    "ROIAlign_backward" not implemented for 'BFloat16'``; ``nms`` has no backward). Training does not reach it:
    ``CPUAmpOptimWrapper`` gives mmdet's RoI extractors float32 feature maps, so their ``roi_align`` runs forward
    and backward in float32 (``tests/test_compat.py::test_patched_roi_align_backward_on_the_cpu``).
    """
    from mmcv.ops.nms import NMSop
    from mmcv.ops.roi_align import RoIAlignFunction
    for function in (NMSop, RoIAlignFunction):
        function.forward = staticmethod(_float_inputs(function.forward))


def _format_configs_once() -> None:
    """``Config.pretty_text`` formats a config's content once (yapf, seconds for a distillation config) and
    returns the same text while the content (``to_dict()``) is unchanged; a changed config is formatted anew
    (measured: tools/analysis/logs/det_study/profile.md)."""
    from mmengine.config import Config
    prop = Config.__dict__['pretty_text']
    if getattr(prop.fget, '_mmkd_format_once', False):
        return
    format_text, cache = prop.fget, {}

    @functools.wraps(format_text)
    def pretty_text(self) -> str:
        key = (getattr(self, '_format_python_code', True), repr(self.to_dict()))
        if key not in cache:
            if len(cache) >= 16:
                cache.clear()
            cache[key] = format_text(self)
        return cache[key]

    pretty_text._mmkd_format_once = True
    Config.pretty_text = property(pretty_text)


def apply() -> None:
    """Apply every patch (idempotent). Patches 1 and 2 must run before mmrazor's models are imported."""
    _alias_torch_fuser_names()
    _lazy_quantization_backend_configs()
    _safe_checkpoint_loading()
    _config_package_table()
    _distillation_loss_detach_hook()
    _format_configs_once()


apply()
