"""Analyses of distillation runs and studies: the study runner and its statistics (study, det_study, cls_study,
demo) and the diagnosis of a distillation run (diagnose)."""
