# ResNet-50 teacher on ImageNet-1k (100 epochs, 8 x 64 images, lr 0.2). Its last checkpoint,
# work_dirs/r50_teacher/epoch_100.pth, is the teacher_ckpt of kdpp_r50_mv2.py.
_base_ = [
    '../_base_/models/imagenet_classifier.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/imagenet_100e.py', '../_base_/default_runtime.py'
]
