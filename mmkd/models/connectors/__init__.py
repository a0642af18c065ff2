from .abf import ABF, ABFConnector
from .embedding_projector import EmbeddingProjector

__all__ = ['ABF', 'ABFConnector', 'EmbeddingProjector']
