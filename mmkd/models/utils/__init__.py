from .checkpoint import DISTILL_PREFIXES, checkpoint_state_dict, describe_mismatch, state_dict_mismatch
from .fuse_conv_bn import fuse_conv_bn_, trace_conv_bn_pairs

__all__ = ['fuse_conv_bn_', 'trace_conv_bn_pairs', 'DISTILL_PREFIXES', 'checkpoint_state_dict',
           'describe_mismatch', 'state_dict_mismatch']
