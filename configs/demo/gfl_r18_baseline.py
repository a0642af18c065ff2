# Demo dense baseline: the GFL R18-FPN student of the demo dense distillation configs, trained alone.
_base_ = './_base_/gfl_r50_r18.py'

model = dict(_delete_=True, **_base_.model.architecture)
