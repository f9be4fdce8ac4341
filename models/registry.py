"""The model registry: versions of each tenant's models and their aliases (``champion``, ``challenger``).

Model files live under ``$SFAI_HOME/models/<tenant>/<name>/v<version>/`` (``model.onnx`` + ``manifest.json``);
the metadata database records versions and alias moves, so serving finds the champion without MLflow.
The same aliases are set on MLflow's registered model when the version came from an MLflow run
(``models/tracking.py``). No torch, no MLflow import here.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from serving.db import Database
from serving.db.tables import ModelAliasEvent, ModelVersionRecord
from serving.errors import Conflict, InvalidInput, NotFound
from serving.runtime import file_sha256
from serving.tenancy import as_utc, get_tenant, utcnow
from serving.usage import deployment_id

log = logging.getLogger(__name__)

ALIASES = ("champion", "challenger")
ROLLBACK = "rollback"  # an alias event marking the next champion move as a rollback (not an alias anyone holds)
MODEL_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")  # a family, or a family and its subset (rul-fd001)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: int
    module: str
    path: Path
    sha256: str
    metrics: dict
    mlflow_run_id: str | None
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def manifest(self) -> dict:
        return json.loads((self.path / "manifest.json").read_text())


class ModelRegistry:
    def __init__(self, db: Database, home: Path, tenant: str, *, default_tenant: str | None = None) -> None:
        """``default_tenant``: the tenant the CLI works on without ``--tenant``; the commands that messages suggest
        name ``--tenant`` for any other (and always where it is None, as over HTTP)."""
        t = get_tenant(db, tenant)
        self.db, self.tenant, self.tenant_id = db, t.name, t.id
        self.default_tenant = default_tenant
        self.root = Path(home) / "models" / t.name

    # hints -------------------------------------------------------------------------------------------
    def tenant_option(self) -> str:
        """`` --tenant NAME`` for a command a message suggests, or nothing for the CLI's default tenant."""
        return "" if self.tenant == self.default_tenant else f" --tenant {self.tenant}"

    def train_hint(self, name: str) -> str:
        """The ``sfai train`` command that makes model ``name`` (a family, or ``rul-fd001``) for this tenant."""
        from models.families import FAMILIES  # no torch there

        family = FAMILIES.get(name.split("-")[0])
        if family is None:
            return f"sfai train MODEL --dataset DATASET --input FILE{self.tenant_option()}"
        return f"sfai train {family.name} --dataset {family.datasets[0]} --input FILE{self.tenant_option()}"

    # writes ------------------------------------------------------------------------------------------
    def register(
        self,
        name: str,
        module: str,
        src: Path,
        *,
        metrics: dict | None = None,
        mlflow_run_id: str | None = None,
        alias: str | None = None,
    ) -> ModelVersion:
        """Copy an exported model directory in as the next version. The first version becomes ``champion``;
        later ones ``challenger`` unless ``alias`` says otherwise (promote them when they prove better)."""
        if not MODEL_NAME.fullmatch(name):  # it names a folder under the tenant's models
            raise InvalidInput(f"model name {name!r}: expected lowercase letters, digits and '-' (e.g. rul-fd001)")
        src = Path(src)
        if not (src / "model.onnx").exists() or not (src / "manifest.json").exists():
            raise InvalidInput(f"{src} is not an exported model (model.onnx + manifest.json)")
        # copied in beside the versions first, then moved into place once its version number is this one's: a
        # registration at the same moment (another trainer) takes the next number instead of removing this folder
        (self.root / name).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root / name))
        try:
            shutil.rmtree(staging)
            shutil.copytree(src, staging)
            sha256 = file_sha256(staging / "model.onnx")
            version = self._claim(name, module, staging, sha256, metrics, mlflow_run_id)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        alias = alias or ("challenger" if self.alias(name, "champion") else "champion")
        self.set_alias(name, alias, version)
        return self.get(name, version=version)

    def _claim(self, name: str, module: str, staging: Path, sha256: str, metrics: dict | None,
               mlflow_run_id: str | None) -> int:
        """Record the next version of ``name`` and move ``staging`` into its folder; the version. Its number is
        claimed by the database's unique index (a concurrent registration gets it first: the next one is tried).
        A folder already there that the database does not know (another deployment's files in this SFAI_HOME, kept
        with another database) is refused, never written over nor moved: a new database's first training had
        written over the other deployment's v1, which that deployment still served (operator's audit). The
        manifest names this database's deployment, so that a folder of its own whose registration was cut off
        between the move and the commit (a killed process) is told from another deployment's and set aside."""
        deployment = deployment_id(self.db)
        for _ in range(20):
            moved: Path | None = None
            try:
                with self.db.session() as s:
                    last = s.scalar(
                        select(func.max(ModelVersionRecord.version)).where(
                            ModelVersionRecord.tenant_id == self.tenant_id, ModelVersionRecord.name == name
                        )
                    )
                    version = (last or 0) + 1
                    dest = self.root / name / f"v{version}"
                    s.add(
                        ModelVersionRecord(
                            tenant_id=self.tenant_id,
                            name=name,
                            version=version,
                            module=module,
                            path=str(dest),
                            sha256=sha256,
                            metrics=json.dumps(metrics or {}),
                            mlflow_run_id=mlflow_run_id,
                            created_at=utcnow(),
                        )
                    )
                    s.flush()  # the number is this registration's from here (or IntegrityError: taken)
                    self._refuse_foreign(dest, deployment)
                    manifest = json.loads((staging / "manifest.json").read_text())
                    manifest["version"] = version
                    manifest["name"] = name  # rul-fd001, where the export wrote the family's name (rul)
                    manifest["tenant"] = self.tenant
                    manifest["deployment"] = deployment
                    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
                    staging.rename(dest)
                    moved = dest
                return version
            except IntegrityError:
                continue  # another registration took this number
            except BaseException:
                if moved is not None and moved.exists() and not staging.exists():
                    moved.rename(staging)  # the commit failed: the version is not recorded, so its folder goes too
                raise
        raise Conflict(f"could not register a new version of {name!r}: other registrations kept taking the next "
                       "version number; try again")

    @staticmethod
    def _refuse_foreign(dest: Path, deployment: str, *, move: bool = True) -> None:
        if not dest.exists():
            return
        try:
            owner = json.loads((dest / "manifest.json").read_text()).get("deployment")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner is not None and owner == deployment and deployment != "-":
            if not move:
                return
            # this database's own registration, cut off after the move and before the commit: kept aside, named
            aside = dest.with_name(f"{dest.name}.interrupted-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
            dest.rename(aside)
            log.warning("%s was left by a registration of this deployment that did not finish (the database has no "
                        "such version); moved to %s", dest, aside.name)
            return
        raise Conflict(f"{dest} exists but this database has no such version: another deployment's models are in "
                       "this SFAI_HOME (a database switched by configuration alone?). Give this database its own "
                       "SFAI_HOME, or move the old deployment's files with 'sfai admin backup' and 'restore'")

    def check_next_free(self, name: str) -> None:
        """Refuse now, before a training, where the next version's folder holds another deployment's model
        (:meth:`_claim` would refuse it after the training)."""
        if not MODEL_NAME.fullmatch(name):
            return  # register() says so
        with self.db.session() as s:
            last = s.scalar(select(func.max(ModelVersionRecord.version)).where(
                ModelVersionRecord.tenant_id == self.tenant_id, ModelVersionRecord.name == name))
        dest = self.root / name / f"v{(last or 0) + 1}"
        if dest.exists():
            # refused here if foreign; this deployment's own folder is left to the registration, which moves it
            # aside once it holds the version's row (here another trainer's registration may be about to commit it:
            # moving it had left that version without its folder, reviewer)
            self._refuse_foreign(dest, deployment_id(self.db), move=False)

    def set_alias(self, name: str, alias: str, version: int | None) -> None:
        if alias not in ALIASES:
            raise InvalidInput(f"unknown alias {alias!r}: expected one of {', '.join(ALIASES)}")
        if version is not None:
            self.get(name, version=version)  # exists?
        with self.db.session() as s:
            s.add(ModelAliasEvent(tenant_id=self.tenant_id, name=name, alias=alias, version=version, at=utcnow()))

    def promote(self, name: str, version: int | None = None) -> ModelVersion:
        """Make ``version`` (default: the challenger) the champion; the old champion becomes challenger.

        The default refuses a challenger that is there because a promotion replaced it as champion: promoting it
        again would undo that promotion (a script running ``promote`` twice put the older model back). Name it with
        ``version`` to mean it, or roll back (:meth:`rollback`)."""
        self._require(name)
        if version is None:
            version = self.alias(name, "challenger")
            if version is None:
                raise NotFound(f"model {name!r} has no challenger to promote; name a version with --version "
                               f"(versions: {_versions_text(self.versions(name))})")
            champion = self.alias(name, "champion")
            if champion is not None and version in self._champions(name)[:-1]:
                t = self.tenant_option()
                raise Conflict(f"model {name!r}: the challenger, version {version}, was champion until version "
                               f"{champion} replaced it; promoting it again would undo that. To go back, run "
                               f"'sfai models rollback {name}{t}'; to mean it, 'sfai models promote {name} "
                               f"--version {version}{t}'")
        old = self.alias(name, "champion")
        self.set_alias(name, "champion", version)
        if old is not None and old != version:
            self.set_alias(name, "challenger", old)
        elif self.alias(name, "challenger") == version:
            self.set_alias(name, "challenger", None)
        return self.get(name, version=version)

    def rollback(self, name: str) -> ModelVersion:
        """Undo the last change of champion: ``champion`` goes back to the version that held it before the current
        one took it, and the current one becomes ``challenger``. Rollbacks step back one champion each, like undo:
        v1 -> v2 -> v3 (promoted in turn), then rollback gives v2, a second rollback v1, and a third says there is
        no earlier champion. A promotion after a rollback starts from the champion then in place."""
        self._require(name)
        stack = self._champions(name)
        if len(stack) < 2:
            first = f"version {stack[-1]} is its first champion" if stack else "it has no champion"
            raise NotFound(f"model {name!r}: {first}; there is no earlier champion to roll back to (make any "
                           f"version champion with 'sfai models promote {name} --version N{self.tenant_option()}'; "
                           f"versions: {_versions_text(self.versions(name))})")
        current, previous = stack[-1], stack[-2]
        with self.db.session() as s:  # the marker first: ``_champions`` pops on the champion move after it
            s.add(ModelAliasEvent(tenant_id=self.tenant_id, name=name, alias=ROLLBACK, version=previous, at=utcnow()))
        self.set_alias(name, "champion", previous)
        if current is not None and current != previous:
            self.set_alias(name, "challenger", current)
        return self.get(name, version=previous)

    def _champions(self, name: str) -> list[int]:
        """The champions in order, as a stack: each move of ``champion`` pushes its version, a rollback pops one.
        The top is the current champion, the one below it where the next rollback goes."""
        stack: list[int] = []
        pop = False
        for alias, version in self._events(name, ("champion", ROLLBACK)):
            if alias == ROLLBACK:
                pop = True
            elif pop:  # a rollback's move: back to the champion below the top
                pop = False
                if len(stack) > 1:
                    stack.pop()
            elif version is not None and (not stack or stack[-1] != version):
                stack.append(version)
        return stack

    # reads -------------------------------------------------------------------------------------------
    def alias(self, name: str, alias: str) -> int | None:
        h = self._history(name, alias)
        return h[-1] if h else None

    def _history(self, name: str, alias: str) -> list[int | None]:
        return [v for _, v in self._events(name, (alias,))]

    def _events(self, name: str, aliases: tuple[str, ...]) -> list[tuple[str, int | None]]:
        with self.db.session() as s:
            return [
                (a, v)
                for a, v in s.execute(
                    select(ModelAliasEvent.alias, ModelAliasEvent.version)
                    .where(
                        ModelAliasEvent.tenant_id == self.tenant_id,
                        ModelAliasEvent.name == name,
                        ModelAliasEvent.alias.in_(aliases),
                    )
                    .order_by(ModelAliasEvent.id)
                )
            ]

    def names(self) -> list[str]:
        """The tenant's registered model names."""
        with self.db.session() as s:
            q = select(ModelVersionRecord.name).where(ModelVersionRecord.tenant_id == self.tenant_id).distinct()
            return sorted(s.scalars(q))

    def versions(self, name: str) -> list[int]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(ModelVersionRecord.version)
                    .where(ModelVersionRecord.tenant_id == self.tenant_id, ModelVersionRecord.name == name)
                    .order_by(ModelVersionRecord.version)
                )
            )

    def _require(self, name: str) -> None:
        """NotFound naming the tenant's models when ``name`` has no version at all."""
        if not self.versions(name):
            raise NotFound(self._no_model(name))

    def _no_model(self, name: str) -> str:
        return f"no model {name!r} for tenant {self.tenant!r} (its models: {', '.join(self.names()) or 'none'})"

    def get(self, name: str, *, version: int | None = None, alias: str = "champion") -> ModelVersion:
        if version is None:
            version = self.alias(name, alias)
            if version is None:
                if not self.versions(name):
                    others = self.names()  # `models show rul` where the tenant has rul-fd001: name what is there
                    there = f" (its models: {', '.join(others)})" if others else ""
                    raise NotFound(f"no model {name!r} for tenant {self.tenant!r}{there}: train one with "
                                   f"'{self.train_hint(name)}'")
                how = (f"sfai models promote {name} --version N{self.tenant_option()}" if alias == "champion"
                       else self.train_hint(name))
                raise NotFound(f"model {name!r} of tenant {self.tenant!r} has no {alias}: make one with '{how}'")
        with self.db.session() as s:
            r = s.scalar(
                select(ModelVersionRecord).where(
                    ModelVersionRecord.tenant_id == self.tenant_id,
                    ModelVersionRecord.name == name,
                    ModelVersionRecord.version == version,
                )
            )
            view = None if r is None else self._view(r)
        if r is None:
            known = self.versions(name)
            if not known:
                raise NotFound(self._no_model(name))
            raise NotFound(f"model {name!r} has no version {version} (versions: {_versions_text(known)})")
        return view

    def list(self, name: str | None = None) -> list[ModelVersion]:
        with self.db.session() as s:
            q = select(ModelVersionRecord).where(ModelVersionRecord.tenant_id == self.tenant_id)
            if name:
                q = q.where(ModelVersionRecord.name == name)
            rows = s.scalars(q.order_by(ModelVersionRecord.name, ModelVersionRecord.version)).all()
            return [self._view(r) for r in rows]

    def _view(self, r: ModelVersionRecord) -> ModelVersion:
        aliases = tuple(a for a in ALIASES if self.alias(r.name, a) == r.version)
        return ModelVersion(
            r.name,
            r.version,
            r.module,
            Path(r.path),
            r.sha256,
            json.loads(r.metrics),
            r.mlflow_run_id,
            as_utc(r.created_at),
            aliases,
        )


def find_champion(reg: ModelRegistry, family: str, preferred: str | None = None, version: int | None = None):
    """The model that answers for ``family``: ``preferred`` (e.g. ``rul-fd002``) if registered, else the
    family's own name, else the newest champion whose name starts with the family (``rul-fd001``)."""
    for candidate in dict.fromkeys([n for n in (preferred, family) if n]):
        try:
            return reg.get(candidate, version=version)
        except NotFound:
            if version is not None and reg.versions(candidate):  # the model is there, the version is not
                raise
            continue
    others = [m for m in reg.list() if m.name.startswith(f"{family}-")]
    if version is None:
        champions = [m for m in others if "champion" in m.aliases]
        if champions:
            return max(champions, key=lambda m: m.created_at)
    elif others:  # a version of which model? (the file's name points to none: engines_line3.txt)
        names = sorted({m.name for m in others})
        raise NotFound(f"version {version} of which {family!r} model? This tenant has {', '.join(names)}; name one "
                       f"with --model (e.g. --model {names[0]}), or 'model' in an API call")
    raise NotFound(f"no trained {family!r} model for tenant {reg.tenant!r}: train one with "
                   f"'{reg.train_hint(family)}'")


def other_champions(versions: list[ModelVersion], family: str, served: str) -> list[str]:
    """The names of ``family``'s other models with a champion than ``served`` (``rul-fd002`` beside ``rul-fd001``),
    among a tenant's registered ``versions``: where a call names no model, one of them may be the one meant."""
    return sorted({v.name for v in versions if (v.name == family or v.name.startswith(f"{family}-"))
                   and "champion" in v.aliases} - {served})


def find_named(reg: ModelRegistry, family: str, name: str) -> ModelVersion:
    """The champion of the model a request names (``"model": "rul-fd002"``): that model or NotFound, never a
    fallback. The name must be one of ``family``'s (``rul`` or ``rul-...`` for the RUL endpoint)."""
    if name != family and not name.startswith(f"{family}-"):
        raise NotFound(f"model {name!r} is not a {family!r} model: name {family!r} or {family}-...")
    try:
        return reg.get(name)
    except NotFound:
        known = sorted({m.name for m in reg.list() if m.name == family or m.name.startswith(f"{family}-")})
        raise NotFound(
            f"no model {name!r} for tenant {reg.tenant!r} (its {family!r} models: {', '.join(known) or 'none'})"
        ) from None


def _versions_text(versions: list[int]) -> str:
    """``1, 2, 3`` (or ``1-40`` for a long unbroken run)."""
    if not versions:
        return "none"
    if len(versions) > 6 and versions == list(range(versions[0], versions[-1] + 1)):
        return f"{versions[0]}-{versions[-1]}"
    return ", ".join(map(str, versions))
