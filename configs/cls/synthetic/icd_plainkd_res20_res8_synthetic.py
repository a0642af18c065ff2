# iCD + plain KD resnet20 -> resnet8: icd_res20_res8_synthetic.py with plain KD (T=4, weight 0.9) on the global
# logits in place of the released SDD multi-region KD, i.e. 0.1 CE + 0.9 KD + 2.0 iCD. Not the released recipe:
# mmkd's first iCD recipe, kept for the study rows reported with it (tools/analysis/cls_study.py).
_base_ = ['./icd_res20_res8_synthetic.py']

model = dict(distiller=dict(_delete_=True, type='ConfigurableDistiller', **_base_.icd_plainkd_distiller))
