"""The verdict rules of mmkd.analysis.diagnose (the checks themselves run in tests/test_tools/test_diagnose_distill.py,
through the command line)."""
import pytest

from mmkd.analysis import diagnose


# -------------------------------------------------------------------------------------------- verdict rules
def test_accuracy_verdict_is_a_binomial_test_against_chance():
    """At chance only when the samples rule out a useful teacher and not a guessing one; undecided in between."""
    assert diagnose.accuracy_verdict(0.9, 50, 4).level == 'OK'
    v = diagnose.accuracy_verdict(0.7, 50, 2)  # 35 of 50 on 2 classes: P(>= 35 | guessing) = 0.003
    assert v.level == 'OK' and '35 of 50' in v.why
    v = diagnose.accuracy_verdict(0.7, 1000, 2)
    assert v.level == 'OK'
    v = diagnose.accuracy_verdict(0.55, 20, 2)  # 11 of 20: P(>= 11 | guessing) = 0.41, P(<= 11 | 75%) = 0.04
    assert v.level == 'FAIL' and 'chance level' in v.why
    v = diagnose.accuracy_verdict(0.6, 10, 2)  # neither chance nor a useful teacher is ruled out
    assert v.level == 'WARN' and 'cannot tell' in v.why and '--num-batches' in v.why
    v = diagnose.accuracy_verdict(0.52, 20000, 2)  # above chance (P = 1e-8), but hardly
    assert v.level == 'WARN' and 'weak' in v.why
    v = diagnose.accuracy_verdict(0.15, 50, 10)
    assert v.level == 'FAIL' and 'chance level' in v.why
    v = diagnose.accuracy_verdict(0.45, 50, 4)  # clearly above chance 0.25, but weak
    assert v.level == 'WARN' and 'weak' in v.why
    assert diagnose.accuracy_verdict(0.4, 50, 10).level == 'WARN'
    assert diagnose.accuracy_verdict(0.0, 8, 4).level == 'FAIL'  # none right: a useful teacher would get some
    assert diagnose.accuracy_verdict(1.0, 2, 4).level == 'WARN'  # 2 samples decide nothing
    assert diagnose.accuracy_verdict(0.3, 1000, 100).level == 'WARN'  # far above chance 0.01, weak
    assert diagnose.accuracy_verdict(None, 0, 4).level == 'WARN'


def test_gradient_verdict_is_at_full_weight_under_a_warmup():
    """A loss warmed up over E epochs is scaled by 1/E at step 0: the verdict divides that out and says so."""
    v = diagnose.gradient_verdict('kd', 0.05, 0.05, 2.0, 1.0, 1 / 20)  # 0.05x the task at step 0, 1x at full weight
    assert v.level == 'OK' and 'scales it by 0.05' in v.why and '= 1x the task' in v.why
    v = diagnose.gradient_verdict('kd', 0.0001, 0.0001, 2.0, 1.0, 1 / 20)  # 0.002x at full weight: too small
    assert v.level == 'WARN' and 'raise its loss_weight about 50x' in v.why  # not 1000x
    v = diagnose.gradient_verdict('kd', 2.0, 2.0, 2.0, 1.0, 1 / 20)  # 2x at step 0, 40x at full weight
    assert v.level == 'FAIL' and 'Lower its loss_weight about 40x' in v.why
    with pytest.raises(ValueError, match='warm-up factor'):
        diagnose.gradient_verdict('kd', 1.0, 1.0, 1.0, 1.0, 0.0)


def test_gradient_verdict_bounds():
    assert diagnose.gradient_verdict('kd', 0.5, 1.0, 2.0, 1.0).level == 'OK'
    assert diagnose.gradient_verdict('kd', 0.5, 8.0, 2.0, 1.0).level == 'WARN'
    v = diagnose.gradient_verdict('kd', 50., 100.0, 2.0, 1.0)
    assert v.level == 'FAIL' and '100x the task' in v.why and 'Lower its loss_weight about 100x' in v.why
    assert diagnose.gradient_verdict('kd', 0.5, 0.001, 2.0, 1.0).level == 'WARN'
    assert diagnose.gradient_verdict('kd', 0.5, 0.0, 2.0, 1.0).level == 'FAIL'
    assert diagnose.gradient_verdict('kd', float('nan'), 1.0, 2.0, 1.0).level == 'FAIL'


def test_preprocessing_differences():
    a = diagnose.preprocessing_summary(
        dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True))
    assert diagnose.preprocessing_differences(a, a) == []
    b = diagnose.preprocessing_summary(dict(mean=[0, 0, 0], std=[255, 255, 255], bgr_to_rgb=False))
    diffs = diagnose.preprocessing_differences(a, b)
    assert len(diffs) == 3 and diffs[0].startswith('mean') and diffs[1].startswith('std') and 'channel' in diffs[2]
    assert diagnose.pipeline_scale([dict(type='LoadImageFromFile'), dict(type='Resize', scale=[64, 64])]) == (64, 64)
