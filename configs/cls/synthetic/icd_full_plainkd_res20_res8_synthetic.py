# iCD + plain KD with the task at full weight resnet20 -> resnet8: icd_plainkd_res20_res8_synthetic.py with CE 1.0
# (CE 1 + 0.9 KD + 2.0 iCD; plain KD on the global logits, not the released SDD multi-region KD), for the CPU
# classification study (tools/analysis/cls_study.py).
_base_ = ['./icd_plainkd_res20_res8_synthetic.py']

model = dict(architecture=dict(head=dict(loss=dict(loss_weight=1.0))))
