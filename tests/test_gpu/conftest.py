"""GPU tests: every test here needs a CUDA device and skips, with the reason, on a machine without one.

``tools/misc/gpu_check.sh`` runs them on a GPU machine after building mmcv's CUDA ops. Tests that run mmcv's ops
on the GPU (RoI Align) also need an mmcv built with CUDA (``FORCE_CUDA=1 make install``) and skip without it.
"""
import pytest
import torch

NO_CUDA = 'needs a CUDA GPU (torch.cuda.is_available() is False); tools/misc/gpu_check.sh runs these on one'


@pytest.fixture(autouse=True)
def _cuda_only():
    if not torch.cuda.is_available():
        pytest.skip(NO_CUDA)


@pytest.fixture
def mmcv_cuda_ops():
    """Skips unless mmcv's compiled ops include CUDA kernels."""
    from mmcv.ops import get_compiling_cuda_version
    version = get_compiling_cuda_version()
    if version == 'not available':
        pytest.skip('mmcv was built without CUDA ops: build it with FORCE_CUDA=1 make install')
    return version


@pytest.fixture
def exact_fp32():
    """No TF32 in matmuls and convolutions, so fp32 results can be compared tightly; restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
