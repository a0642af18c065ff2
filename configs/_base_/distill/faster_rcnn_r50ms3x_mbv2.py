# The ND paper's MobileNetV2 pair: an R50-FPN 3x teacher (detectron2's, 40.2; here mmdet's
# faster-rcnn_r50_fpn_ms-3x_coco, 40.3, same input normalisation as the student) -> the MobileNetV2-FPN student,
# trained 1x with multi-scale 640-800 (faster_rcnn_r101ms3x_r50.py).
_base_ = './faster_rcnn_r101ms3x_mbv2.py'

# mmdet 3.3 model zoo: faster_rcnn/faster_rcnn_r50_fpn_mstrain_3x_coco/
# faster_rcnn_r50_fpn_mstrain_3x_coco_20210524_110822-e10bd31c.pth (box AP 40.3)
teacher_ckpt = 'checkpoints/faster_rcnn_r50_fpn_mstrain_3x_coco_20210524_110822-e10bd31c.pth'
model = dict(teacher=dict(backbone=dict(depth=50)), teacher_ckpt=teacher_ckpt)
