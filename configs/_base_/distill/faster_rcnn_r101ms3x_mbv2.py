# The paper's setup (faster_rcnn_r101ms3x_r50.py: R101-FPN ms-3x teacher, 1x multi-scale 640-800 student) with the
# MobileNetV2-FPN student (mbv2_student.py). The paper's MV2 pair has an R50 teacher: faster_rcnn_r50ms3x_mbv2.py.
_base_ = ['./faster_rcnn_r101ms3x_r50.py', './mbv2_student.py']

model = dict(architecture=_base_.mbv2_student)
