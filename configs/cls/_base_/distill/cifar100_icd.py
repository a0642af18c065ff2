# iCD + KD on CIFAR-100: the method (icd.py) with CIFAR-100, the 240-epoch KD benchmark schedule and the
# runtime. Pair configs (configs/cls/cifar100/icd_*.py) set the models and the loss weights.
_base_ = [
    './icd.py', '../datasets/cifar100.py', '../schedules/cifar100_240e.py', '../default_runtime.py'
]

# iCD's schedule: batch 64 on one GPU, no Nesterov; lr 0.01 for its lightweight students, 0.05 for its vgg8 students
optim_wrapper = dict(optimizer=dict(lr=0.01, nesterov=False))
auto_scale_lr = dict(base_batch_size=64)
