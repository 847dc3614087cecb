"""The models: each one a pair of networks built from the math modules, its loss and one
training step (a :class:`~nnscratch.training.trainer.Trainer` subclass).

- :mod:`nnscratch.models.vae`: the variational autoencoder (``VAE``, ``VAETrainer``);
- :mod:`nnscratch.models.gan`: the generative adversarial network (``GAN``, ``GANTrainer``);
- :mod:`nnscratch.models.toy2d`: the 2-D Gaussian mixtures on which a GAN's mode coverage is
  measured.
"""
