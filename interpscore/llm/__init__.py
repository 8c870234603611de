"""Language models that explain and score SAE latents: backends (in-process transformers,
OpenAI-compatible HTTP), a response cache on disk, and sentence embeddings."""
