# R101-FPN teacher -> MobileNetV2-FPN student (mbv2_student.py).
_base_ = ['./faster_rcnn_r101_r50.py', './mbv2_student.py']

model = dict(architecture=_base_.mbv2_student)
