"""The advisor: threads, tools, retrieval and LLM providers."""
