# mmdet's Faster R-CNN R50-FPN 1x on COCO (8 GPUs x 2 images, SGD lr 0.02, steps at epochs 8 and 11), with
# mmkd's CocoDataset, which stops at once with a clear message when data/coco/ is missing.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))
val_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
