"""The checkpoint-fit helpers that the algorithms, tools/test.py and diagnose_distill share."""
import pytest
import torch
from torch import nn

from mmkd.models.utils import checkpoint_state_dict, describe_mismatch, state_dict_mismatch


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))


def test_num_batches_tracked_is_not_missing_and_shapes_are_checked():
    expected = _model().state_dict()
    given = {k: v for k, v in expected.items() if not k.endswith('num_batches_tracked')}
    assert state_dict_mismatch(expected, given) == ([], [], [])
    given['2.weight'] = torch.zeros(3, 4)
    given['extra'] = torch.zeros(1)
    del given['1.running_var']
    missing, unexpected, mismatched = state_dict_mismatch(expected, given)
    assert missing == ['1.running_var'] and unexpected == ['extra']
    assert mismatched == [('2.weight', [3, 4], [2, 4])]
    text = describe_mismatch(expected, given, 'the teacher')
    assert text.startswith('2 of the 8 weights of the teacher') and '1.running_var' in text and 'extra' in text


def test_checkpoint_state_dict_strips_module_prefix_and_refuses_non_checkpoints():
    state = {'module.a': torch.zeros(1)}
    assert list(checkpoint_state_dict(dict(state_dict=state, meta={}), 'f.pth')) == ['a']
    assert list(checkpoint_state_dict(state, 'f.pth')) == ['a']
    with pytest.raises(ValueError, match='holds no state_dict'):
        checkpoint_state_dict([1, 2], 'f.pth')
