# The RTMDet-s student of the RTMDet distillation configs, trained alone (mmdet's rtmdet_s_8xb32-300e_coco, 44.5).
_base_ = 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'

custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))
val_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))
test_dataloader = val_dataloader
