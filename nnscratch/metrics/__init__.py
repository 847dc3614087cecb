"""Image metrics: a small dense classifier of Fashion-MNIST (``classifier``) whose features
give the Frechet distance and the classes covered by a set of samples (``frechet``)."""
