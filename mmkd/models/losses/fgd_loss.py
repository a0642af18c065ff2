"""FGD (Focal and Global Distillation) feature loss of one FPN level as a registered module."""
from typing import Dict, List, Sequence, Tuple

from mmengine.model import constant_init, kaiming_init
from torch import Tensor, nn

from mmkd.registry import MODELS
from .functional_dense import fgd_attention, fgd_feature_loss, fgd_global_loss, fgd_mask_loss, fgd_masks

MASK_SHAPES = ('img_shape', 'batch_input_shape')


class GcBlock(nn.Module):
    """FGD's global-context block (a GCNet context block with channel addition): ``GC(F) = F + W2(ReLU(LN(W1(
    ctx))))`` with ``ctx[c] = sum_hw softmax_hw(Wk F) F[c, hw]``.

    ``Wk`` (``conv_mask``) is a 1x1 conv ``C -> 1`` (Kaiming normal, fan-in, bias 0); ``W1`` a 1x1 conv
    ``C -> C // 2``, ``LN`` a ``LayerNorm([C // 2, 1, 1])``, ``W2`` a 1x1 conv ``C // 2 -> C`` initialised to zero,
    so ``GC(F) = F`` at initialisation (as the authors' ``reset_parameters``).

    Forward: ``[N, C, H, W]`` -> ``[N, C, H, W]``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f'GcBlock needs at least 2 channels (its bottleneck has channels // 2), got {channels}')
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=1), nn.LayerNorm([channels // 2, 1, 1]),
            nn.ReLU(inplace=False), nn.Conv2d(channels // 2, channels, kernel_size=1))
        kaiming_init(self.conv_mask, mode='fan_in')
        constant_init(self.channel_add_conv[-1], val=0)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        weights = self.conv_mask(x).view(n, h * w, 1).softmax(dim=1)  # [N, HW, 1]
        context = x.reshape(n, c, h * w).matmul(weights).view(n, c, 1, 1)
        return x + self.channel_add_conv(context)


@MODELS.register_module()
class FGDLoss(nn.Module):
    """FGD feature loss of one feature level (Yang et al., "Focal and Global Knowledge Distillation for
    Detectors", CVPR 2022), with the semantics of the authors' released ``FeatureLoss``.

    With ``F^s`` the student map (through a 1x1 ``Conv2d(C_s -> C_t)`` with bias when ``C_s != C_t``), ``F^t`` the
    teacher map, ``N`` the batch size and sums over ``n, c, h, w``:

    * ``L_fg = (1/N) sum M_fg A_S^t A_C^t (F^t - F^s)^2``, ``L_bg`` the same with ``M_bg``: the masks of
      :func:`~mmkd.models.losses.functional_dense.fgd_masks` (box area ``1/(h w)`` in cells, the smaller box wins on
      overlap, background normalised per image) and the **teacher's** attention of
      :func:`~mmkd.models.losses.functional_dense.fgd_attention` at temperature ``temp`` on both terms;
    * ``L_mask = (1/N) [sum |A_C^s - A_C^t| + sum |A_S^s - A_S^t|]``;
    * ``L_global = (1/N) sum (GC_t(F^t) - GC_s(F^s))^2`` with two separate, trainable :class:`GcBlock` s
      (``gc_s``, ``gc_t``; both identity at initialisation, the teacher-side one trained with the student's
      optimizer as in the authors' code);

    ``loss = loss_weight (alpha_fgd L_fg + beta_fgd L_bg + gamma_fgd L_mask + lambda_fgd L_global)``
    (``loss_weight`` 1 is the authors' loss; it scales all four terms at once, e.g. for features of another
    magnitude: the terms are sums, so they grow with the square of the features). The teacher map is detached:
    no gradient reaches ``preds_T`` (the teacher-side GC block still gets its gradient).

    The authors' one-stage configs use ``gamma_fgd=5e-4`` (the class default is 1e-3); their two-stage configs use
    ``alpha/beta/gamma/lambda = 5e-5 / 2.5e-5 / 5e-5 / 5e-7``. One instance per FPN level (each has its own
    layers).

    Args:
        student_channels: ``C_s``.
        teacher_channels: ``C_t`` (at least 2: the context block halves it).
        temp: attention temperature (0.5; the authors' FCOS config uses 0.8).
        alpha_fgd, beta_fgd, gamma_fgd, lambda_fgd: weights of the four terms.
        loss_weight: one factor on the whole loss (1: the authors').
        mask_shape: which image size the caller passes as ``img_shapes``: ``'img_shape'`` (default, the authors':
            the unpadded resized size, which stretches the masks of images smaller than the padded batch) or
            ``'batch_input_shape'`` ([PROPOSAL] the padded batch size: masks on the boxes' true cells). The loss
            uses whatever it is given; the algorithm reads this attribute to pick the metainfo key.

    Forward:
        preds_S ``[N, C_s, H, W]``, preds_T ``[N, C_t, H, W]``, gt_bboxes ``N x [k_i, 4]`` (xyxy pixels of the
        resized image), img_shapes ``N x (h, w)`` -> scalar.
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 temp: float = 0.5,
                 alpha_fgd: float = 1e-3,
                 beta_fgd: float = 5e-4,
                 gamma_fgd: float = 1e-3,
                 lambda_fgd: float = 5e-6,
                 mask_shape: str = 'img_shape',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if teacher_channels < 2:
            raise ValueError(f'FGDLoss: teacher_channels must be >= 2 (the global-context block has a '
                             f'teacher_channels // 2 bottleneck), got {teacher_channels}')
        if student_channels < 1:
            raise ValueError(f'FGDLoss: student_channels must be >= 1, got {student_channels}')
        if not temp > 0:
            raise ValueError(f'FGDLoss: temp must be > 0, got {temp}')
        if not (isinstance(loss_weight, (int, float)) and loss_weight >= 0 and loss_weight < float('inf')):
            raise ValueError(f'FGDLoss: loss_weight must be a finite number >= 0, got {loss_weight!r}')
        if mask_shape not in MASK_SHAPES:
            raise ValueError(f'FGDLoss: mask_shape must be one of {MASK_SHAPES}, got {mask_shape!r}')
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.temp = temp
        self.alpha_fgd, self.beta_fgd, self.gamma_fgd, self.lambda_fgd = alpha_fgd, beta_fgd, gamma_fgd, lambda_fgd
        self.mask_shape = mask_shape
        self.loss_weight = float(loss_weight)
        self.align = nn.Conv2d(student_channels, teacher_channels, kernel_size=1) \
            if student_channels != teacher_channels else None
        self.gc_s = GcBlock(teacher_channels)
        self.gc_t = GcBlock(teacher_channels)

    def _check(self, preds_S: Tensor, preds_T: Tensor, gt_bboxes: List[Tensor],
               img_shapes: Sequence[Tuple[int, int]]) -> None:
        for name, x, c in (('preds_S', preds_S, self.student_channels), ('preds_T', preds_T, self.teacher_channels)):
            if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != c:
                shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f'FGDLoss: {name} must have shape [N, {c}, H, W] (the channels given at '
                                 f'construction), got {shape}')
        if preds_S.shape[-2:] != preds_T.shape[-2:] or preds_S.shape[0] != preds_T.shape[0]:
            raise ValueError(f'FGDLoss: student {list(preds_S.shape)} and teacher {list(preds_T.shape)} maps '
                             'must have the same batch size and H, W; record the same FPN level of both models')
        if len(gt_bboxes) != preds_S.shape[0] or len(img_shapes) != preds_S.shape[0]:
            raise ValueError(f'FGDLoss: got {len(gt_bboxes)} box tensors and {len(img_shapes)} image shapes for '
                             f'a batch of {preds_S.shape[0]}; pass one of each per image')

    def terms(self, preds_S: Tensor, preds_T: Tensor, gt_bboxes: List[Tensor],
              img_shapes: Sequence[Tuple[int, int]]) -> Dict[str, Tensor]:
        """The four unweighted terms ``fg``, ``bg``, ``mask``, ``global`` (same inputs as :meth:`forward`)."""
        self._check(preds_S, preds_T, gt_bboxes, img_shapes)
        preds_T = preds_T.detach()
        if self.align is not None:
            preds_S = self.align(preds_S)
        mask_fg, mask_bg = fgd_masks(gt_bboxes, img_shapes, preds_S.shape[-2:])
        mask_fg, mask_bg = mask_fg.to(preds_S.device), mask_bg.to(preds_S.device)
        spatial_t, channel_t = fgd_attention(preds_T, self.temp)
        spatial_s, channel_s = fgd_attention(preds_S, self.temp)
        fg, bg = fgd_feature_loss(preds_S, preds_T, mask_fg, mask_bg, spatial_t, channel_t)
        return dict(
            fg=fg,
            bg=bg,
            mask=fgd_mask_loss(channel_s, channel_t, spatial_s, spatial_t),
            **{'global': fgd_global_loss(self.gc_s(preds_S), self.gc_t(preds_T))})

    def forward(self, preds_S: Tensor, preds_T: Tensor, gt_bboxes: List[Tensor],
                img_shapes: Sequence[Tuple[int, int]]) -> Tensor:
        t = self.terms(preds_S, preds_T, gt_bboxes, img_shapes)
        return self.loss_weight * (self.alpha_fgd * t['fg'] + self.beta_fgd * t['bg'] + self.gamma_fgd * t['mask']
                                   + self.lambda_fgd * t['global'])
