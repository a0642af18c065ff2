from .base import TeacherStudentDistill
from .cls_distill import ClsDistill
from .roi_distill import RoIDistill

__all__ = ['TeacherStudentDistill', 'ClsDistill', 'RoIDistill']
