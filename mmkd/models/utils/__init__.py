from .fuse_conv_bn import fuse_conv_bn_, trace_conv_bn_pairs

__all__ = ['fuse_conv_bn_', 'trace_conv_bn_pairs']
