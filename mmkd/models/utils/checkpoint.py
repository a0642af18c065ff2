"""How a checkpoint fits a model: the one check that the distillation algorithms (``teacher_ckpt``),
``tools/test.py`` and ``tools/analysis/diagnose_distill.py`` share, so that they all accept and refuse the same
checkpoints."""
import re
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
from torch import Tensor

#: prefixes of the parts of a distillation checkpoint (mmrazor's layout)
DISTILL_PREFIXES = ('architecture.', 'teacher.', 'distiller.')


def checkpoint_state_dict(checkpoint: Any, filename: str) -> Dict[str, Tensor]:
    """The ``state_dict`` of a loaded checkpoint (or the checkpoint itself when it is one), with the
    ``module.`` prefix of (D)DP-wrapped models stripped, as mmengine's loader does."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise ValueError(f'{filename} holds no state_dict (a {type(checkpoint).__name__}); is it a checkpoint?')
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def state_dict_mismatch(expected: Mapping[str, Tensor], given: Mapping[str, Any]
                        ) -> Tuple[List[str], List[str], List[Tuple[str, list, list]]]:
    """``(missing, unexpected, shape_mismatched)`` entries of ``given`` against a model's ``expected`` state
    dict; ``shape_mismatched`` holds ``(name, shape in given, shape in the model)``. BatchNorm
    ``num_batches_tracked`` counters do not count as missing (mmengine ignores them too)."""
    missing = [k for k in expected if k not in given and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in given if k not in expected]
    mismatched = [(k, list(given[k].shape), list(v.shape)) for k, v in expected.items()
                  if k in given and torch.is_tensor(given[k]) and given[k].shape != v.shape]
    return missing, unexpected, mismatched


def describe_mismatch(expected: Mapping[str, Tensor], given: Mapping[str, Any], what: str, shown: int = 4) -> str:
    """One paragraph for an error: how many of ``what``'s weights ``given`` does not provide, and a few names
    of the missing, unexpected and shape-mismatched entries."""
    missing, unexpected, mismatched = state_dict_mismatch(expected, given)
    lost = set(missing) | {k for k, _, _ in mismatched}
    total = sum(1 for k in expected if not k.endswith('num_batches_tracked'))
    values = sum(expected[k].numel() for k in lost)
    all_values = max(1, sum(v.numel() for k, v in expected.items() if not k.endswith('num_batches_tracked')))

    def few(names: Sequence[str]) -> str:
        return ', '.join(names[:shown]) + (f', ... ({len(names) - shown} more)' if len(names) > shown else '')

    parts = [f'{len(lost)} of the {total} weights of {what} ({values / all_values:.0%} of its values) would not '
             f'be loaded']
    if missing:
        parts.append(f'{len(missing)} missing ({few(missing)})')
    if mismatched:
        parts.append(f'{len(mismatched)} of another shape ('
                     + few([f'{k}: {g} in the checkpoint, {e} in the model' for k, g, e in mismatched]) + ')')
    if unexpected:
        parts.append(f'{len(unexpected)} in the checkpoint but not in the model ({few(unexpected)})')
    return '; '.join(parts) + '.'
