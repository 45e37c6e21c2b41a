"""adpilot: precision ad targeting for e-commerce, driven by pretrained language models."""

__version__ = "0.1.0"
