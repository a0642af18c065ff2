# KD++ on CIFAR-100: the method (kdpp.py) with CIFAR-100, the 240-epoch KD benchmark schedule and the
# runtime. Pair configs (configs/cls/cifar100/kdpp_*.py) set the models and the loss weights.
_base_ = [
    './kdpp.py', '../datasets/cifar100.py', '../schedules/cifar100_240e.py', '../default_runtime.py'
]
