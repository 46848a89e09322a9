"""Flask-Migrate projects: env.py reads the app from flask's ``current_app``, so it runs inside the app's context,
as ``flask db upgrade`` runs it.

The app is loaded with Flask's own code (``flask.cli.ScriptInfo``: FLASK_APP, or app.py / wsgi.py, with the
project's folder on sys.path) anew for every run of env.py, inside the handoff: Flask-SQLAlchemy builds its
engine when the app is made, through SQLAlchemy's factories, which then lend the tool's connection (the scratch
copy in a rehearsal, the target in the apply). Flask is imported only for such a project.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from hindsight_migrate.errors import ConfigError

if TYPE_CHECKING:
    from hindsight_migrate.config.settings import FlaskProject


@contextmanager
def app_context(project: FlaskProject) -> Iterator[None]:
    """The Flask app's context for the block; the app is made here (errors of the app's own code propagate, for
    the caller to blame on the project)."""
    try:
        from flask.cli import NoAppException, ScriptInfo, load_dotenv  # lazy: Flask is the project's, not the tool's
    except ImportError as err:
        raise ConfigError(
            f"{project.migrations / 'env.py'} is Flask-Migrate's: it reads the app from flask's current_app, and "
            "Flask is not installed where hindsight-migrate runs. Install the project's requirements (Flask, "
            "Flask-SQLAlchemy, Flask-Migrate) in the same environment as hindsight-migrate."
        ) from err
    load_dotenv()  # .flaskenv and .env, as `flask` loads them before it makes the app (it keeps what is set)
    info = ScriptInfo(app_import_path=project.app, set_debug_flag=False)
    try:
        app = info.load_app()
    except NoAppException as err:
        named = f"FLASK_APP={project.app}" if project.app else "no FLASK_APP (so app.py or wsgi.py)"
        raise ConfigError(
            f"This is a Flask-Migrate project, and its app could not be found ({named}, from {project.folder}): "
            f"{err}. Set FLASK_APP as for `flask db upgrade`, and run hindsight-migrate from the "
            "project's folder.",
        ) from err
    with app.app_context():
        yield
