"""The HTTP layer: a thin FastAPI app over ``pynomaly_detector.dataplane``.

``app`` builds the application (``create_app``) and its lifespan, ``deps`` holds the
dependency aliases, ``routes`` the endpoints, ``middleware`` the pure-ASGI middleware stack,
``errors`` the error types and the JSON error handlers, ``ratelimiting`` the shared limiter,
``fastpath`` the innermost middleware that hands detect/infer straight to the data plane.
The top layer: socket -> uvicorn -> middleware -> ``fastpath`` -> ``DataPlane``.
"""
