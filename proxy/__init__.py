"""LinguaGate: an OpenAI-compatible reverse proxy that compresses long prompts."""

__version__ = "0.1.0"
