"""A downstream project inherits mmkd's configs with ``_base_ = 'mmkd::configs/...'`` and stock mmengine."""
import subprocess
import sys
import textwrap


def test_downstream_config_inherits_overrides_and_builds(tmp_path):
    (tmp_path / 'my_nd.py').write_text(textwrap.dedent('''
        _base_ = 'mmkd::configs/demo/faster_rcnn_r50_r18_nd.py'
        model = dict(teacher_ckpt=None, distiller=dict(distill_losses=dict(loss_nd=dict(loss_weight=2.5))))
        train_cfg = dict(max_iters=7)
        '''))
    # A fresh interpreter that never imports mmkd itself, as a downstream project's tools/train.py would be.
    code = textwrap.dedent('''
        import sys
        from mmengine.config import Config
        from mmengine.registry import MODELS, init_default_scope
        cfg = Config.fromfile('my_nd.py', import_custom_modules=False)
        assert 'mmkd' not in sys.modules  # the base resolved before mmkd could register anything
        init_default_scope(cfg.default_scope)
        model = MODELS.build(cfg.model)
        print(type(model).__name__, model.distiller.distill_losses['loss_nd'].loss_weight, cfg.train_cfg.max_iters,
              type(model.student.backbone).__name__, model.student.backbone.depth, model.class_means.num_classes)
        ''')
    out = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['RoIDistill', '2.5', '7', 'ResNet', '18', '5']


def test_every_shipped_config_resolves_through_mmkd_scheme(tmp_path):
    """The mmkd:: path of a config is its repository path: every top-level config is reachable."""
    import glob
    import os
    from mmengine.config import Config
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    names = sorted(os.path.relpath(p, repo) for p in glob.glob(os.path.join(repo, 'configs', '*.py')))
    assert len(names) >= 15
    for name in names:
        (tmp_path / 'child.py').write_text(f"_base_ = 'mmkd::{name}'\n")
        cfg = Config.fromfile(str(tmp_path / 'child.py'))
        assert cfg.model.get('_scope_') in ('mmkd', 'mmdet'), name
