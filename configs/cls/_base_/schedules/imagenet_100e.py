# The ImageNet KD++ schedule: 100 epochs of SGD (momentum 0.9, wd 1e-4), lr 0.2 for a total batch of 512
# (8 GPUs x 64), x0.1 at epochs 30, 60 and 90.
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(enable=False, base_batch_size=512)
