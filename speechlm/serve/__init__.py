"""``speechlm serve``: a local web page and JSON API to record, continue, listen and compare.

    from speechlm.serve import ServeConfig, build_engine, create_app
    app = create_app(build_engine("default"), ServeConfig(max_pending=4))   # an ASGI app

One process loads the model once; one worker thread runs the model jobs from a bounded queue
(:mod:`speechlm.serve.jobs`); uploads are bounded and validated as the CLI validates audio
(:mod:`speechlm.serve.uploads`); the operations are in :mod:`speechlm.serve.engine` and the
routes in :mod:`speechlm.serve.app`. Needs the ``serve`` extra (Starlette, uvicorn,
python-multipart); nothing here is imported by ``import speechlm``.
"""

from __future__ import annotations

__all__ = ["ServeConfig", "build_engine", "create_app"]


def __getattr__(name: str):
    if name in __all__:
        from speechlm.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'speechlm.serve' has no attribute {name!r}")
