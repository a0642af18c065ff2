"""Access to the teacher class means for losses that need them (ND, NC)."""
from mmkd.structures import ClassMeans


class ClassMeansMixin:
    """Holds a **non-module** reference to the algorithm's :class:`~mmkd.structures.ClassMeans`.

    The distillation algorithm owns the ``ClassMeans`` (so it is saved once, under the algorithm) and calls
    :meth:`bind_class_means` on every loss that needs it. The reference is kept in a plain list, so the loss
    does not register it as a submodule and it does not appear a second time in ``state_dict``.
    """

    def bind_class_means(self, class_means: ClassMeans) -> None:
        """Use ``class_means`` (means ``[K, D]`` and ``valid [K]``) from now on."""
        if not isinstance(class_means, ClassMeans):
            raise TypeError(f'bind_class_means expects an mmkd.structures.ClassMeans, got '
                            f'{type(class_means).__name__}')
        self._class_means_ref = [class_means]

    @property
    def class_means(self) -> ClassMeans:
        """The bound, initialised class means; RuntimeError otherwise."""
        ref = getattr(self, '_class_means_ref', None)
        if not ref or not ref[0].initialized:
            state = 'were bound but hold no valid class yet' if ref else 'were never bound'
            raise RuntimeError(
                f'{type(self).__name__} needs teacher class means, which {state}. Use it inside one of mmkd\'s '
                'distillation algorithms with a `class_means=dict(...)` setting (it binds them to the loss) '
                'together with ClassMeansHook (it fills them from the teacher, a file or the checkpoint).')
        return ref[0]
