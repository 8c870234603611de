"""Autointerp machinery: examples collected in the shared pass, prompts, and scorers."""
