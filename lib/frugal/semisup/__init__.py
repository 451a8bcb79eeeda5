"""Semi-supervised learning: dropout sampling, uncertainty measures, supervision building."""
