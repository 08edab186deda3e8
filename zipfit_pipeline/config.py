"""The project file (`zipfit.yaml`): sources, targets, models, budgets, compressor and training settings.

Partitions are derived from it, so adding a source dataset here adds a partition and scores only that
dataset. Relative paths are resolved against the file's folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from zipfit_pipeline.engine.core.compute import ComputeSettings
from zipfit_pipeline.engine.core.models import locate_pretrained
from zipfit_pipeline.engine.core.owned_folders import check_owned, claim
from zipfit_pipeline.engine.core.settings import NAME_PATTERN, Settings
from zipfit_pipeline.engine.evaluate import PassAtKSettings
from zipfit_pipeline.engine.ingest import (
    FILE_FORMATS,
    DatasetSpec,
    IncomingSettings,
    RecordReader,
    TargetSpec,
    incoming_name,
)
from zipfit_pipeline.engine.score import ScoringSettings
from zipfit_pipeline.engine.select import SelectionSettings
from zipfit_pipeline.engine.train import TrainingSettings
from zipfit_pipeline.ownership import check_ownership
from zipfit_pipeline.project_file import CONFIG_ENV, DEFAULT_ARTIFACTS, DEFAULT_STORE, read_project_file

DEFAULT_CONFIG = "zipfit.yaml"


class ModelSpec(Settings):
    name: str = Field(pattern=NAME_PATTERN)
    pretrained: str = Field(description="hub id or local folder of a transformers causal LM")


class ProjectConfig(Settings):
    root: Path = Field(Path("."), description="folder that relative paths are resolved against")
    store: str = DEFAULT_STORE
    artifacts: str = DEFAULT_ARTIFACTS
    cache: str = "data/cache"
    sources: list[DatasetSpec] = Field(default_factory=list)
    incoming: IncomingSettings | None = None
    targets: list[TargetSpec] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    compute: ComputeSettings = ComputeSettings()
    scoring: ScoringSettings = ScoringSettings()
    selection: SelectionSettings = SelectionSettings()
    training: TrainingSettings = TrainingSettings()
    pass_at_k: PassAtKSettings = PassAtKSettings()
    _file: Path | None = PrivateAttr(None)  # the project file it was read from: the owner of its store and artifacts

    @property
    def file(self) -> Path | None:
        return self._file

    @model_validator(mode="after")
    def _unique_names(self) -> ProjectConfig:
        if not self.sources and self.incoming is None:
            raise ValueError("list at least one source, or an incoming folder to drop source files into")
        for kind, items in (("source", self.sources), ("target", self.targets), ("model", self.models)):
            names = [item.name for item in items]
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} names must be unique, got {names}")
        return self

    @model_validator(mode="after")
    def _usable_paths(self) -> ProjectConfig:
        """Where the pipeline writes must be a file (the store) or folders, and never one of the inputs."""
        store = self.resolve(self.store)
        if store.is_dir():
            raise ValueError(f"store: {store} is a folder; give the DuckDB file's path (e.g. data/zipfit.duckdb)")
        inputs = {self.resolve(spec.path) for spec in [*self.sources, *self.targets]}
        if store in inputs:
            raise ValueError(f"store: {store} is also an input dataset; the store must be a file of its own")
        for name in ("artifacts", "cache"):
            folder = self.resolve(getattr(self, name))
            if folder.is_file():
                raise ValueError(f"{name}: {folder} is a file; it must be a folder the pipeline can write to")
            if folder in inputs or any(folder in path.parents for path in inputs):
                raise ValueError(f"{name}: {folder} holds input datasets; the pipeline writes and deletes there")
            check_owned(folder, name)
        return self

    @model_validator(mode="after")
    def _models_found(self) -> ProjectConfig:
        """Checked now, not when the first selection needs a tokenizer (or an embedder) after hours of scoring."""
        for spec in self.models:
            try:
                locate_pretrained(spec.pretrained, self.root)
            except FileNotFoundError as error:
                raise ValueError(f"model {spec.name}: pretrained: {error}") from None
        try:
            self.selection_settings()
        except FileNotFoundError as error:
            raise ValueError(f"selection.embedding.model: {error}") from None
        return self

    def resolve(self, path: str) -> Path:
        """A path from the project file as an absolute path: `~` expanded, relative to the file's folder, links
        followed."""
        return (self.root / Path(path).expanduser()).resolve()

    def all_sources(self) -> list[DatasetSpec]:
        """The sources listed in the file, then one per dataset file in the incoming folder (names listed win)."""
        return [*self.sources, *self.incoming_sources()]

    def incoming_sources(self) -> list[DatasetSpec]:
        """One source per dataset file in the incoming folder (not links), unless a listed source has its name."""
        if self.incoming is None:
            return []
        folder = self.resolve(self.incoming.path)
        taken = {s.name for s in self.sources}
        specs = []
        for file in sorted(folder.iterdir()) if folder.is_dir() else []:
            name = incoming_name(file)
            if name and name not in taken and file.is_file() and not file.is_symlink():
                taken.add(name)
                specs.append(
                    DatasetSpec(
                        name=name,
                        path=str(file),
                        format=FILE_FORMATS[file.suffix.lower()],
                        text_field=self.incoming.text_field,
                        template=self.incoming.template,
                        id_field=self.incoming.id_field,
                    )
                )
        return specs

    def is_still(self, spec: DatasetSpec) -> bool:
        """Whether a source can be read now: a listed one always, a dropped file once unchanged for `stable_seconds`."""
        if self.incoming is None or spec in self.sources:
            return True
        try:
            age = time.time() - Path(spec.path).stat().st_mtime
        except OSError:  # removed meanwhile
            return False
        return age >= self.incoming.stable_seconds

    def source(self, name: str) -> DatasetSpec:
        spec = next((s for s in self.all_sources() if s.name == name), None)
        if spec is None:
            raise KeyError(f"no source dataset named {name!r} in the project file or the incoming folder")
        return spec

    def target(self, name: str) -> TargetSpec:
        return next(t for t in self.targets if t.name == name)

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def reader(self, spec: DatasetSpec) -> RecordReader:
        """A reader of the usable records of a source or target, as the project file describes it."""
        return RecordReader(
            path=self.input_path(spec),
            text_field=spec.text_field,
            template=spec.template,
            id_field=spec.id_field,
            format=spec.format,
            query=spec.query,
            split=spec.split,
            cache_dir=str(self.cache_dir() / "datasets"),
            max_chars=spec.max_chars,
        )

    def artifacts_dir(self) -> Path:
        """Checkpoints and reports: a folder of the pipeline's own (see `owned_folders`)."""
        return claim(self.resolve(self.artifacts), "artifacts", owner=self.file)

    def cache_dir(self) -> Path:
        return claim(self.resolve(self.cache), "cache")

    def models_dir(self) -> Path:
        """Where fine-tuned checkpoints are written, and the only place eval loads them from."""
        return self.artifacts_dir() / "models"

    def input_path(self, spec: DatasetSpec) -> str:
        """A local path resolved against the project folder; a hub id as it is."""
        local = self.resolve(spec.path)
        return str(local) if local.exists() or spec.format != "hub" else spec.path

    def model_path(self, spec: ModelSpec) -> str:
        return locate_pretrained(spec.pretrained, self.root)

    def selection_settings(self) -> SelectionSettings:
        """`selection`, with the embedder's folder relative to the project file (or a hub id) found."""
        embedding = self.selection.embedding
        if embedding.model is None:
            return self.selection
        found = embedding.model_copy(update={"model": locate_pretrained(embedding.model, self.root)})
        return self.selection.model_copy(update={"embedding": found})


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG)).resolve()


def load_project(path: str | Path | None = None, check_owner: bool = True) -> ProjectConfig:
    """Read and validate the project file; errors name the file and the offending field. Refuses a store or
    artifacts folder that another project still uses (`ownership.py`), unless told not to check."""
    file = Path(path).resolve() if path else config_path()
    raw = read_project_file(file)
    raw["root"] = file.parent / raw.get("root", ".")
    try:
        config = ProjectConfig.model_validate(raw)
    except ValidationError as error:
        raise ValueError(f"{file}: {validation_message(error)}") from error
    config._file = file
    if check_owner:
        check_ownership(file, config.resolve(config.store), config.resolve(config.artifacts))
    return config


def validation_message(error: ValidationError, option_names: bool = False) -> str:
    """Pydantic's errors as `field: what is wrong; ...` (`--field-name` for the CLI), without its URLs and input
    dumps."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        if option_names and where:
            where = "--" + where.replace("_", "-")
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
