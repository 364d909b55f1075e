"""What the registry knows about a dataset: :class:`DatasetSpec` and its :class:`FileSpec` files."""
from __future__ import annotations

from dataclasses import dataclass, field

EMBEDDED = "embedded"


@dataclass(frozen=True)
class FileSpec:
    """One file of a file-based dataset, inside the dataset's folder of the data directory."""

    name: str
    sha256: str | None = None
    url: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: embedded (built in code) or file-based (listed in ``hraml_core/data/registry.toml``)."""

    name: str
    task: str
    format: str  # "embedded", or a load_file format: "mat", "arff", "csv", "parquet"
    description: str = ""
    source: str = ""
    homepage: str = ""
    shape: tuple[int, int, int] | None = None  # (n_samples, n_features, n_labels or classes)
    data: str | None = None  # the file load_file reads, relative to the dataset folder
    files: tuple[FileSpec, ...] = ()
    options: tuple[tuple[str, object], ...] = field(default=())  # load_file keyword options

    @property
    def embedded(self) -> bool:
        return self.format == EMBEDDED

    @property
    def option_dict(self) -> dict:
        return dict(self.options)

    def shape_text(self) -> str:
        if not self.shape:
            return "?"
        n, d, k = self.shape
        unit = "classes" if self.task == "classification" else "labels"
        return f"{n} x {d}, {k} {unit}"
