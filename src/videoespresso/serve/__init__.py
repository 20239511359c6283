"""Serving videoespresso models over HTTP (the ``serve`` extra: FastAPI + uvicorn).

:mod:`videoespresso.serve.openai_server` is the OpenAI-compatible chat-completions API.
"""
