"""The HTTP layer: a thin FastAPI app over ``pynomaly_detector.dataplane``.

``app`` builds the application (``create_app``) and its lifespan, ``deps`` holds the
dependency aliases, ``routes`` the endpoints, ``middleware`` the pure-ASGI middleware stack,
``errors`` the error types and the JSON error handlers, ``ratelimiting`` the shared limiter,
``fastpath`` serves detect/infer behind the same edge layer, before FastAPI's own stack.
The top layer: socket -> uvicorn -> ``app.DetectorApp`` -> edge (``middleware``) ->
``fastpath`` -> ``DataPlane``.
"""
