# mmrazor's FBKD (FBKDLoss with non-local connectors on 4 FPN convolutions), Faster R-CNN R101-FPN 1x -> R50-FPN 1x,
# run by mmkd.FullTeacherDistill (mmrazor's SingleTeacherDistill: the teacher runs its whole loss forward).
# As in mmrazor's file, the student starts from mmdet's trained R50 Faster R-CNN (architecture.pretrained=True).
# Train: tools/dist_train.sh configs/mmrazor/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/fbkd/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py']

model = dict(type='mmkd.FullTeacherDistill')
