"""An Alembic project on disk, and the one place the adapter's parts are put together.

:class:`Workspace` is what every part needs — Alembic's ``Config`` (from the ini,
pyproject.toml or both), the ``ScriptDirectory``, which files are the project's own code, and
the database the plan is for. Each part is built from explicit arguments, with no way back to
the whole: ``RevisionGraph(workspace)`` reads the revision graph, ``EnvironmentRunner(workspace,
graph)`` runs env.py (online with the tool's connection, or offline for SQL), and
``Authoring(workspace, env, on_written=…)`` writes revision files. :class:`AlembicProject`
composes them, and is what the rest of the tool holds.
"""

from __future__ import annotations

import argparse
import io
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from hindsight_migrate.alembic_api.translate import ProjectFiles
from hindsight_migrate.config import DatabaseSource, Settings
from hindsight_migrate.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import URL

    from hindsight_migrate.alembic_api.authoring import Authoring
    from hindsight_migrate.alembic_api.environment import EnvironmentRunner
    from hindsight_migrate.alembic_api.graph import RevisionGraph
    from hindsight_migrate.alembic_api.handoff import ExpectedDatabase


class AlembicProject:
    """An Alembic project: its ``workspace``, revision graph (``graph``), env.py (``env``) and new files
    (``authoring``), each built here from the parts it needs."""

    def __init__(self, settings: Settings) -> None:
        self.workspace = Workspace(settings)

    @property
    def settings(self) -> Settings:
        return self.workspace.settings

    @property
    def output(self) -> io.StringIO:
        return self.workspace.output

    @property
    def target(self) -> ExpectedDatabase | None:
        return self.workspace.target

    @property
    def config(self) -> Config:
        return self.workspace.config

    @property
    def directory(self) -> ScriptDirectory:
        return self.workspace.directory

    @property
    def files(self) -> ProjectFiles:
        return self.workspace.files

    def bind_target(self, url: URL, origin: str) -> None:
        self.workspace.bind_target(url, origin)

    def retarget(self, database: DatabaseSource) -> None:
        """The next target of a fleet: the same project (its graph loaded once), another database (bind_target
        it once connected)."""
        from dataclasses import replace  # lazy: only a fleet's worker moves a project between databases

        self.workspace.settings = replace(self.workspace.settings, database=database)
        self.workspace.target = None

    def set_x_arguments(self, arguments: tuple[str, ...]) -> None:
        """What ``alembic -x KEY=VALUE`` gives env.py (``context.get_x_argument()``): a fleet's tenant schema."""
        self.config.cmd_opts = argparse.Namespace(x=list(arguments))

    def set_main_option(self, name: str, value: str) -> None:
        """An option of the ini's main section, for env.py to read (a multidb project's ``databases``)."""
        self.config.set_main_option(name, value.replace("%", "%%"))

    def relative(self, path: Path) -> Path:
        return self.workspace.relative(path)

    def absolute(self, path: Path) -> Path:
        return self.workspace.absolute(path)

    @cached_property
    def graph(self) -> RevisionGraph:
        from hindsight_migrate.alembic_api.graph import RevisionGraph

        return RevisionGraph(self.workspace)

    @cached_property
    def env(self) -> EnvironmentRunner:
        from hindsight_migrate.alembic_api.environment import EnvironmentRunner

        return EnvironmentRunner(self.workspace, self.graph)

    @cached_property
    def authoring(self) -> Authoring:
        from hindsight_migrate.alembic_api.authoring import Authoring

        return Authoring(self.workspace, self.env, on_written=self.forget_graph)

    def forget_graph(self) -> None:
        """A revision file was written: the next use of the graph reads the folder again."""
        self.workspace.forget_directory()
        self.graph.forget()


class Workspace:
    """What every part of the adapter needs: the settings, Alembic's Config and ScriptDirectory, the project's
    files, and the database the plan is for. It knows none of the parts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.output = io.StringIO()  # what Alembic's commands print, kept out of our output
        self._resolved_folders: dict[Path, Path] = {}  # for relative(): each folder's real path, walked once
        self.target: ExpectedDatabase | None = None  # set by bind_target once the database is known

    @cached_property
    def config(self) -> Config:
        from alembic.config import Config

        settings = self.settings
        config = Config(
            file_=str(settings.ini_path) if settings.ini_path else None,
            toml_file=str(settings.toml_path) if settings.toml_path else None,
            ini_section=settings.ini_section,
            stdout=self.output,
        )
        # pytest-alembic's convention: an env.py that honours it leaves logging to the caller.
        config.attributes["configure_logger"] = False
        if settings.flask is not None and not config.get_main_option("script_location"):
            config.set_main_option("script_location", str(settings.flask.migrations))  # as Flask-Migrate sets it
        if settings.database.url is not None:
            self._set_url(config, settings.database.url)
        return config

    def bind_target(self, url: URL, origin: str) -> None:
        """The database the plan is for: env.py is handed it in sqlalchemy.url, and may ask for no other."""
        from hindsight_migrate.alembic_api.handoff import ExpectedDatabase

        self._set_url(self.config, url.render_as_string(hide_password=False))
        self.target = ExpectedDatabase(url=url, origin=origin)

    @staticmethod
    def _set_url(config: Config, url: str) -> None:
        # Every stock env.py reads its URL here (engine_from_config of the section, or
        # get_main_option): the database the tool resolved is the one it finds. configparser
        # interpolates, so a '%' in a password is written '%%'.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))

    @cached_property
    def directory(self) -> ScriptDirectory:
        """The migrations folder as Alembic configures it, before any revision file is read."""
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

        try:
            directory = ScriptDirectory.from_config(self.config)
        except CommandError as err:
            raise ConfigError(
                "Alembic cannot open the migrations folder named by script_location in "
                f"{self.settings.config_path}: {err}"
            ) from err
        # Alembic only checks that the path exists: a file there would read as a project with no
        # revisions at all (history --offline shows an empty graph) and fail later, looking for env.py.
        if not Path(directory.dir).is_dir():
            raise ConfigError(
                f"script_location in {self.settings.config_path} names {directory.dir}, which is a file, not the "
                "migrations folder (the one that holds env.py and versions/). Point script_location at that folder."
            )
        for folder in directory._version_locations:
            if Path(folder).exists() and not Path(folder).is_dir():
                raise ConfigError(
                    f"Alembic reads revision files from {folder} (version_locations, or versions/ in the migrations "
                    f"folder of {self.settings.config_path}), but it is a file, not a folder, so no revision would "
                    "be found. Make it the folder that holds the revision files, or fix version_locations."
                )
        return directory

    @cached_property
    def files(self) -> ProjectFiles:
        """Which files are the project's own code (for blaming an exception on the right party)."""
        roots = {self.settings.project_dir}
        try:
            directory = self.directory
        except ConfigError:
            directory = None
        revision_folders: tuple[Path, ...] = ()
        if directory is not None:
            roots.add(Path(directory.dir).resolve())
            revision_folders = tuple(sorted({Path(folder).resolve() for folder in directory._version_locations}))
            roots.update(revision_folders)
        return ProjectFiles(
            roots=tuple(sorted(roots)), display_root=self.settings.project_dir, revision_folders=revision_folders
        )

    def forget_directory(self) -> None:
        """A revision file was written: the ScriptDirectory memoizes the revision map it loaded."""
        self.__dict__.pop("directory", None)

    def relative(self, path: Path) -> Path:
        """``path`` relative to the project folder when it is inside it (as RevisionInfo.path is)."""
        # The folder is resolved once for all its files (a chain of 1,000 revisions: 1,000 realpath walks less).
        try:
            folder = self._resolved_folders.get(path.parent)
            if folder is None:
                folder = self._resolved_folders[path.parent] = path.parent.resolve()
            return (folder / path.name).relative_to(self.settings.project_dir)
        except ValueError:
            return path

    def absolute(self, path: Path) -> Path:
        return path if path.is_absolute() else self.settings.project_dir / path

