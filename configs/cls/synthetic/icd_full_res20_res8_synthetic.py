# iCD resnet20 -> resnet8 with the task at full weight: icd_res20_res8_synthetic.py (iCD as released: 0.1 CE
# + 0.9 SDD-KD + 2.0 iCD) with CE 1.0, for the CPU classification study (tools/analysis/cls_study.py): the
# released 0.1 leaves the task a small share of the gradient at short schedules
# (tools/analysis/logs/nc_icd_analysis.md).
_base_ = ['./icd_res20_res8_synthetic.py']

model = dict(architecture=dict(head=dict(loss=dict(loss_weight=1.0))))
