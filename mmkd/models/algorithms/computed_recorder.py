"""A recorder whose record the distillation algorithm computes itself, so that distiller mappings can read it."""
from typing import Any, Optional

from mmrazor.models.task_modules.recorder.base_recorder import BaseRecorder
from torch import nn

from mmkd.registry import TASK_UTILS


@TASK_UTILS.register_module()
class ComputedRecorder(BaseRecorder):
    """A named record that hooks nothing: the algorithm stores a value it computed in a step (:meth:`set`), and
    the distiller's ``loss_forward_mappings`` read it by name like any recorder's (``recorder='pos_feat'``,
    ``data_idx`` for a tuple value). Configs write ``dict(type='mmkd.Computed', source='<what it holds>')``.

    The record is cleared when the recorder manager's context is entered (as every mmrazor recorder's), so the
    algorithm sets it after the forward it belongs to.
    """

    def prepare_from_model(self, model: Optional[nn.Module] = None) -> None:
        """Nothing to hook."""

    def set(self, value: Any) -> None:
        """Make ``value`` this step's (only) record."""
        self._data_buffer = [value]
