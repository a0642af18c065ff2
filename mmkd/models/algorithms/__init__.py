from .base import TeacherStudentDistill
from .cls_distill import ClsDistill
from .computed_recorder import ComputedRecorder
from .dense_distill import DenseDistill
from .fpn_distill import FpnTeacherDistill, FullTeacherDistill
from .roi_distill import RoIDistill

__all__ = ['TeacherStudentDistill', 'ClsDistill', 'ComputedRecorder', 'DenseDistill', 'FpnTeacherDistill',
           'FullTeacherDistill', 'RoIDistill']
