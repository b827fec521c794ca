"""Hugging Face LLMs: Inference Endpoints and Transformers."""
