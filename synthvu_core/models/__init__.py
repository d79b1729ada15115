"""Generators: AC-GAN architectures, training (with DP-SGD), registry and sampling."""
