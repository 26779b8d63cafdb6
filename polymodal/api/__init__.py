"""The HTTP API and the web page: a thin face over :class:`polymodal.Collection` (``polymodal serve``).

Nothing here is imported by ``import polymodal``; FastAPI is needed only to serve (the ``serve`` extra).
"""
