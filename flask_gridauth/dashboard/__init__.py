"""The key dashboard: a small web page to create, copy once, rotate and revoke keys.

Register :data:`dashboard_blueprint` under a prefix, e.g.
``app.register_blueprint(dashboard_blueprint, url_prefix="/dashboard")``.
The app needs a ``SECRET_KEY``.
"""

from .views import dashboard_blueprint

__all__ = ["dashboard_blueprint"]
