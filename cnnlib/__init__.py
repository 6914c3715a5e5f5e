"""cnnlib: the verified helpers behind the CNN backbones course."""

__version__ = "0.1.0"
