"""What mmkd's command-line tools do, as functions (the tools stay thin command lines over these).

``distill_config``: the distillation config of a teacher config, a student config and a method
(``tools/distill.py``).
"""
