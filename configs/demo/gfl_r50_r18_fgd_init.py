# Demo: FGD as the authors' COCO recipe runs it (configs/gfl_r101_r50_fgd.py): the student's neck and head start
# from the teacher's checkpoint (their init_student). The neck's lateral convs, whose input widths differ between
# the R50 and the R18, keep their initialisation (the log names them). A row of the dense study added after its
# results, to test whether FGD's collapse there comes from starting the student from scratch.
_base_ = './gfl_r50_r18_fgd.py'

model = dict(student_init_from_teacher=['neck', 'bbox_head'])
