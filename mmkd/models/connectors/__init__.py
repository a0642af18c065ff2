from .embedding_projector import EmbeddingProjector

__all__ = ['EmbeddingProjector']
