from .base import TeacherStudentDistill
from .roi_distill import RoIDistill
from .cls_distill import ClsDistill  # noqa: F401

__all__ = ['TeacherStudentDistill', 'RoIDistill']
