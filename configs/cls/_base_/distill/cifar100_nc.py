# [PROPOSAL] NC-inspired distillation on CIFAR-100: the method (nc.py) with CIFAR-100, the 240-epoch KD benchmark
# schedule and the runtime. Pair configs (configs/cls/cifar100/nc_*.py) set the models and the loss weights.
_base_ = [
    './nc.py', '../datasets/cifar100.py', '../schedules/cifar100_240e.py', '../default_runtime.py'
]
