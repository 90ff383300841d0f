"""Dataset generation from a Data Designer-style config: config models, samplers, templates, LLM calls."""
