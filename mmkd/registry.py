"""mmkd's registries and scope.

Every registry here is a child of the registry mmkd's modules are normally built from, so that a dict carrying
``_scope_='mmkd'`` (which mmengine adds to every dict inherited through an ``mmkd::`` base) still finds the
classes of the libraries mmkd builds on:

* ``MODELS`` and ``TASK_UTILS`` are children of **mmrazor**'s: distillation algorithms, distillers, losses,
  connectors and recorders resolve unprefixed. mmdet models are reached with ``mmdet.`` or, as in every mmkd
  config, through student/teacher dicts that keep the ``_scope_='mmdet'`` of their ``mmdet::`` base.
* everything else (datasets, transforms, metrics, hooks, loops, visualizers, ...) is a child of **mmdet**'s, so
  the detection configs' data pipeline, ``CocoMetric`` and hooks resolve unprefixed.

``locations`` lets mmengine import mmkd's modules lazily when it first builds something in the ``mmkd`` scope.
"""
from mmdet.registry import DATA_SAMPLERS as MMDET_DATA_SAMPLERS
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import EVALUATOR as MMDET_EVALUATOR
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import LOG_PROCESSORS as MMDET_LOG_PROCESSORS
from mmdet.registry import LOOPS as MMDET_LOOPS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import MODEL_WRAPPERS as MMDET_MODEL_WRAPPERS
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMDET_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet.registry import OPTIM_WRAPPERS as MMDET_OPTIM_WRAPPERS
from mmdet.registry import OPTIMIZERS as MMDET_OPTIMIZERS
from mmdet.registry import PARAM_SCHEDULERS as MMDET_PARAM_SCHEDULERS
from mmdet.registry import RUNNER_CONSTRUCTORS as MMDET_RUNNER_CONSTRUCTORS
from mmdet.registry import RUNNERS as MMDET_RUNNERS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmdet.registry import VISBACKENDS as MMDET_VISBACKENDS
from mmdet.registry import VISUALIZERS as MMDET_VISUALIZERS
from mmdet.registry import WEIGHT_INITIALIZERS as MMDET_WEIGHT_INITIALIZERS
from mmengine.registry import Registry
from mmrazor.registry import MODELS as MMRAZOR_MODELS
from mmrazor.registry import TASK_UTILS as MMRAZOR_TASK_UTILS

SCOPE = 'mmkd'


def _child(name: str, parent: Registry, *locations: str) -> Registry:
    return Registry(name, parent=parent, scope=SCOPE, locations=list(locations))


MODELS = _child('model', MMRAZOR_MODELS, 'mmkd.models')
TASK_UTILS = _child('task util', MMRAZOR_TASK_UTILS, 'mmkd.models')

RUNNERS = _child('runner', MMDET_RUNNERS)
RUNNER_CONSTRUCTORS = _child('runner constructor', MMDET_RUNNER_CONSTRUCTORS)
LOOPS = _child('loop', MMDET_LOOPS, 'mmkd.engine')
HOOKS = _child('hook', MMDET_HOOKS, 'mmkd.engine')
DATASETS = _child('dataset', MMDET_DATASETS, 'mmkd.datasets')
DATA_SAMPLERS = _child('data sampler', MMDET_DATA_SAMPLERS, 'mmkd.datasets')
TRANSFORMS = _child('transform', MMDET_TRANSFORMS, 'mmkd.datasets')
MODEL_WRAPPERS = _child('model_wrapper', MMDET_MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child('weight initializer', MMDET_WEIGHT_INITIALIZERS)
OPTIMIZERS = _child('optimizer', MMDET_OPTIMIZERS)
OPTIM_WRAPPERS = _child('optimizer_wrapper', MMDET_OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor', MMDET_OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child('parameter scheduler', MMDET_PARAM_SCHEDULERS)
METRICS = _child('metric', MMDET_METRICS, 'mmkd.evaluation')
EVALUATOR = _child('evaluator', MMDET_EVALUATOR)
VISUALIZERS = _child('visualizer', MMDET_VISUALIZERS)
VISBACKENDS = _child('vis_backend', MMDET_VISBACKENDS)
LOG_PROCESSORS = _child('log_processor', MMDET_LOG_PROCESSORS)
