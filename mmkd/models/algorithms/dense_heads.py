"""What :class:`~mmkd.models.algorithms.DenseDistill` needs to know of each mmdet 3.3 dense head it supports.

One :class:`DenseHeadAdapter` wraps a head (``GFLHead``, ``RetinaHead``, ``ATSSHead``, ``FCOSHead``,
``RTMDetSepBNHead``) and gives, per FPN level: its two conv stacks, its predictions from the last features of those
stacks (as the head's training-mode ``forward`` computes them), a forward that keeps the intermediate features
(the teacher's), and the head's label assignment as per-level tensors (:func:`normalise_targets`).
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import ATSSHead, FCOSHead, GFLHead, LDHead, RetinaHead, RTMDetSepBNHead
from mmdet.models.utils import images_to_levels
from mmdet.structures.bbox import distance2bbox
from mmdet.utils import reduce_mean
from torch import Tensor, nn

#: exact head classes supported, by kind (subclasses may change the conv layout or the assignment: refused)
HEAD_KINDS = {GFLHead: 'gfl', RetinaHead: 'retina', ATSSHead: 'atss', FCOSHead: 'fcos', RTMDetSepBNHead: 'rtmdet'}


def head_kind(head_cls: type) -> str:
    """The kind (``'gfl'``, ``'retina'``, ``'atss'``, ``'fcos'``, ``'rtmdet'``) of a head class; a clear error for
    any other class."""
    if head_cls in HEAD_KINDS:
        return HEAD_KINDS[head_cls]
    if head_cls is LDHead:
        raise ValueError('LDHead computes its loss from a teacher that mmdet\'s KnowledgeDistillationSingleStage'
                         'Detector passes in, which DenseDistill does not: use a GFLHead (the same network) and '
                         '`ld=dict()` in the algorithm config.')
    names = ', '.join(sorted({c.__name__ for c in HEAD_KINDS}))
    raise ValueError(f'DenseDistill supports the dense heads {names} of mmdet 3.3 (their conv stacks, predictors '
                     f'and label assignment are known to it); the model\'s bbox_head is {head_cls.__name__}. Use '
                     f'one of those heads, or mmrazor\'s FpnTeacherDistill for neck-only distillation.')


def targets_method_path(head_cls: type) -> str:
    """Import path of the ``get_targets`` the head class runs (for an mmrazor ``MethodOutputs`` recorder)."""
    for cls in head_cls.__mro__:
        if 'get_targets' in cls.__dict__:
            return f'{cls.__module__}.{cls.__name__}.get_targets'
    raise ValueError(f'{head_cls.__name__} has no get_targets')


def activation_fn(conv_module: nn.Module) -> Callable[[Tensor], Tensor]:
    """The out-of-place functional form of a ``ConvModule``'s activation (ReLU or SiLU/Swish)."""
    act = getattr(conv_module, 'activate', None)
    if isinstance(act, nn.ReLU):
        return F.relu
    if isinstance(act, nn.SiLU) or type(act).__name__ in ('SiLU', 'Swish'):
        return F.silu
    raise ValueError(f'CrossKD re-applies the head\'s activation after aligning the student\'s features; '
                     f'{type(act).__name__} is not supported (ReLU, SiLU).')


class DenseHeadAdapter:
    """Level-wise access to one supported dense head (see the module docstring)."""

    def __init__(self, head: nn.Module) -> None:
        self.head = head
        self.kind = head_kind(type(head))
        if self.kind == 'rtmdet' and head.with_objectness:
            raise ValueError('DenseDistill supports RTMDetSepBNHead without objectness (with_objectness=False, as '
                             'in every mmdet RTMDet config).')

    @property
    def num_levels(self) -> int:
        return self.head.prior_generator.num_levels

    @property
    def num_priors(self) -> int:
        """Priors (anchors) per location."""
        return self.head.num_base_priors

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def feat_channels(self) -> int:
        return self.head.feat_channels

    @property
    def stacked_convs(self) -> int:
        return self.head.stacked_convs

    def conv_stacks(self, level: int) -> Tuple[nn.ModuleList, nn.ModuleList]:
        """``(cls_convs, reg_convs)`` that level ``level`` runs through."""
        if self.kind == 'rtmdet':
            return self.head.cls_convs[level], self.head.reg_convs[level]
        return self.head.cls_convs, self.head.reg_convs

    def unique_modules(self, branch: str, index: int) -> List[nn.Module]:
        """The distinct conv modules ``index`` of ``branch`` (``'cls'``/``'reg'``) over the levels, in level order
        (one shared module, or one per level for RTMDet's separate BatchNorms)."""
        out = []
        for level in range(self.num_levels):
            module = self.conv_stacks(level)[0 if branch == 'cls' else 1][index]
            if not any(m is module for m in out):
                out.append(module)
        return out

    def predict(self, cls_feat: Tensor, reg_feat: Tensor, level: int) -> Dict[str, Tensor]:
        """The head's outputs of one level from the last features of its two stacks, as its training-mode
        ``forward`` computes them: ``cls`` logits ``[N, A*K, H, W]``, ``reg`` ``[N, A*R, H, W]`` (GFL: distribution
        logits after ``Scale``; RetinaNet/ATSS: deltas; FCOS: ltrb distances in stride units with
        ``norm_on_bbox``, else pixels; RTMDet: ltrb pixel distances) and ``ctr`` (ATSS/FCOS centerness logits)."""
        h, k = self.head, self.kind
        if k == 'gfl':
            return dict(cls=h.gfl_cls(cls_feat), reg=h.scales[level](h.gfl_reg(reg_feat)).float())
        if k == 'retina':
            return dict(cls=h.retina_cls(cls_feat), reg=h.retina_reg(reg_feat))
        if k == 'atss':
            return dict(cls=h.atss_cls(cls_feat), reg=h.scales[level](h.atss_reg(reg_feat)).float(),
                        ctr=h.atss_centerness(reg_feat))
        if k == 'fcos':
            reg = h.scales[level](h.conv_reg(reg_feat)).float()
            reg = reg.clamp(min=0) if h.norm_on_bbox else reg.exp()
            ctr = h.conv_centerness(reg_feat if h.centerness_on_reg else cls_feat)
            return dict(cls=h.conv_cls(cls_feat), reg=reg, ctr=ctr)
        stride = h.prior_generator.strides[level][0]
        reg = h.rtm_reg[level](reg_feat)
        reg = (reg.exp() if h.exp_on_reg else reg) * stride
        return dict(cls=h.rtm_cls[level](cls_feat), reg=reg)

    def forward_with_features(self, feats: Sequence[Tensor], hold_idx: Optional[int] = None
                              ) -> List[Dict[str, Tensor]]:
        """The head's forward, level by level, keeping per level its outputs (:meth:`predict`), ``cls_last`` (the
        output of the last classification conv) and, with ``hold_idx`` k, ``cls_hold``/``reg_hold`` (the outputs
        of conv k-1 of each stack, post-activation; the FPN feature for k = 0)."""
        out = []
        for level, x in enumerate(feats):
            cls_convs, reg_convs = self.conv_stacks(level)
            cls_feat = reg_feat = x
            rec = dict(cls_hold=x, reg_hold=x)
            for i, conv in enumerate(cls_convs):
                cls_feat = conv(cls_feat)
                if hold_idx is not None and i + 1 == hold_idx:
                    rec['cls_hold'] = cls_feat
            for i, conv in enumerate(reg_convs):
                reg_feat = conv(reg_feat)
                if hold_idx is not None and i + 1 == hold_idx:
                    rec['reg_hold'] = reg_feat
            rec.update(self.predict(cls_feat, reg_feat, level), cls_last=cls_feat)
            out.append(rec)
        return out

    def forward_from(self, cls_feat: Tensor, reg_feat: Tensor, level: int, start: int) -> Dict[str, Tensor]:
        """The head's outputs of level ``level`` from features entering conv ``start`` of each stack."""
        cls_convs, reg_convs = self.conv_stacks(level)
        for conv in cls_convs[start:]:
            cls_feat = conv(cls_feat)
        for conv in reg_convs[start:]:
            reg_feat = conv(reg_feat)
        return self.predict(cls_feat, reg_feat, level)

    def outputs_by_level(self, head_outs: tuple) -> List[Dict[str, Tensor]]:
        """The head module's ``forward`` return value (tuple of per-level lists) as per-level dicts."""
        names = ('cls', 'reg', 'ctr')[:len(head_outs)]
        return [dict(zip(names, level)) for level in zip(*head_outs)]

    # ------------------------------------------------------------------ label assignment
    def compute_targets(self, outs: List[Dict[str, Tensor]], batch_gt_instances: list, batch_img_metas: List[dict]
                        ) -> Dict:
        """Run the head's own ``get_targets`` as its ``loss_by_feat`` does, on its per-level outputs ``outs``;
        returns :func:`normalise_targets`'s dict."""
        h, device = self.head, outs[0]['cls'].device
        sizes = [o['cls'].shape[-2:] for o in outs]
        if self.kind == 'fcos':
            points = h.prior_generator.grid_priors(sizes, dtype=outs[0]['reg'].dtype, device=device)
            raw = h.get_targets(points, batch_gt_instances)
        else:
            anchor_list, valid_flag_list = h.get_anchors(sizes, batch_img_metas, device=device)
            if self.kind == 'rtmdet':
                n = len(batch_img_metas)
                cls = torch.cat([o['cls'].permute(0, 2, 3, 1).reshape(n, -1, h.cls_out_channels) for o in outs], 1)
                boxes = torch.cat([distance2bbox(a.reshape(-1, 4), o['reg'].permute(0, 2, 3, 1).reshape(n, -1, 4))
                                   for a, o in zip(anchor_list[0], outs)], 1)
                raw = h.get_targets(cls, boxes, anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas)
            else:
                raw = h.get_targets(anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas)
        return self.normalise_targets(raw, sizes, batch_img_metas)

    def normalise_targets(self, raw: tuple, featmap_sizes: Sequence, batch_img_metas: List[dict]) -> Dict:
        """The output of the head's ``get_targets`` as a dict of per-level tensors, each ``[N, H*W*A, ...]`` in the
        order of ``cls.permute(0, 2, 3, 1)`` rows: ``labels`` (background = K), ``label_weights``, ``priors``
        (anchors, or FCOS/RTMDet points, ``[N, HWA, 4 or 2]``, pixels), ``bbox_targets`` and ``avg_factor`` (the
        head's classification normaliser, all-reduced where the head does it, clamped to >= 1 here: with no
        positive in the batch the head's own QFL/focal normaliser is ~0 and its cls terms explode)."""
        h, n = self.head, len(batch_img_metas)
        if self.kind in ('gfl', 'atss'):
            priors, labels, label_weights, bbox_targets, _, avg = raw
            avg = reduce_mean(torch.tensor(float(avg), device=labels[0].device)).item()
        elif self.kind == 'retina':
            labels, label_weights, bbox_targets, _, avg = raw[:5]
            anchor_list, _ = h.get_anchors(featmap_sizes, batch_img_metas, device=labels[0].device)
            num_level = [a.size(0) for a in anchor_list[0]]
            priors = images_to_levels([torch.cat(a) for a in anchor_list], num_level)
            avg = float(avg)
        elif self.kind == 'rtmdet':
            priors, labels, label_weights, bbox_targets, metrics, _ = raw
            avg = reduce_mean(sum(m.sum() for m in metrics)).item()
        else:  # fcos: per level [N*HW], image-major; bbox targets in stride units with norm_on_bbox
            labels = [lab.reshape(n, -1) for lab in raw[0]]
            bbox_targets = [b.reshape(n, -1, 4) for b in raw[1]]
            label_weights = [torch.ones_like(lab, dtype=torch.float) for lab in labels]
            points = h.prior_generator.grid_priors(featmap_sizes, dtype=torch.float, device=labels[0].device)
            priors = [p[None].expand(n, -1, -1) for p in points]
            num_pos = sum(int(((lab >= 0) & (lab < h.num_classes)).sum()) for lab in labels)
            avg = reduce_mean(torch.tensor(float(num_pos), device=labels[0].device)).item()
        return dict(labels=list(labels), label_weights=list(label_weights), priors=list(priors),
                    bbox_targets=list(bbox_targets), avg_factor=max(float(avg), 1.0))
