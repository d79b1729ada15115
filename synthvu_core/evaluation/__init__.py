"""Evaluation: encoder, utility, fidelity, embeddings, privacy attacks and reports."""
