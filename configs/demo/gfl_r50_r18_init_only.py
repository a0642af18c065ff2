# Demo: the GFL R18-FPN student alone, its neck and head started from the teacher's checkpoint as FGD's recipe starts
# them (gfl_r50_r18_fgd_init.py), without any distillation loss: the control that tells FGD's loss from that start.
# A row of the dense study added after its results.
_base_ = './_base_/gfl_r50_r18.py'

model = dict(student_init_from_teacher=['neck', 'bbox_head'])
