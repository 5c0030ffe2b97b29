"""Backends: thin adapters from a ChatRequest to one raw answer (no cache, retries or validation).

Import them through :func:`agentictagger.llm.factory.make_backend`; importing this package does
not import the optional dependencies (``openai`` client, ``llama_cpp``).
"""
