"""tiergate: a privacy-first, multi-tier LLM gateway."""
__version__ = "0.1.0"
