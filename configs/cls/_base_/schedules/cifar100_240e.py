# The CIFAR-100 KD benchmark schedule (KD++/DKD++ code): 240 epochs of SGD (Nesterov, momentum 0.9, wd 5e-4),
# lr 0.1 for a total batch of 128, x0.1 at epochs 150, 180 and 210.
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(enable=False, base_batch_size=128)
