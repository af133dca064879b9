"""Options of the commands that load a finished run: ``kdnlu predict`` and ``kdnlu export``
(a light module: building their command lines imports no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from kdnlu.options import CheckpointChoice, DeviceChoice, option


@dataclass(frozen=True)
class PredictOptions:
    """What ``kdnlu predict`` predicts, with which checkpoint, and where it writes."""

    split: str = option("test", "test (submission files + zip), dev, or any split name")
    tasks: tuple[str, ...] | None = option(
        None, "only these task keys, comma-separated (default: all)", metavar="A,B", sep=","
    )
    checkpoint: CheckpointChoice = option("auto", "the run's checkpoint (auto: best if any)")
    out: str | None = option(
        None, "output folder (default RUN_DIR/submission or RUN_DIR/predictions)"
    )
    batch_size: int = option(64, "rows per forward pass")
    device: DeviceChoice = option("auto", "where the model runs")


@dataclass(frozen=True)
class ExportOptions:
    """Which checkpoint ``kdnlu export`` writes."""

    checkpoint: CheckpointChoice = option("auto", "the run's checkpoint (auto: best if any)")
