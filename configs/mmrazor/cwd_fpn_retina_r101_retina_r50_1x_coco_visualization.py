# cwd_fpn_retina_r101_retina_r50_1x_coco.py with mmrazor's RazorVisualizationHook: the student's P3-P6 feature
# maps of validation image 0 drawn before training and after every epoch (under work_dir/<time>/retina_vis);
# no checkpoints. Same fixes as that config (docs/mmrazor_configs.md).
_base_ = ['mmrazor::distill/mmdet/cwd/cwd_fpn_retina_r101_retina_r50_1x_coco_visualization.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth'  # noqa: E501
model = dict(type='mmkd.FpnTeacherDistill', teacher=dict(pretrained=False), teacher_ckpt=teacher_ckpt)
