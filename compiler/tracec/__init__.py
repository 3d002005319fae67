"""tracec: compile LLM classification traces into a certified, signed routing bundle."""

__version__ = "0.1.0"
