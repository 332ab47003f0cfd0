"""The data a training run saw, as an MLflow dataset input: the run page's "Datasets used".

The dataset is named after its folder, its digest is sedwatt's dataset fingerprint (the label and
duration TSVs and the unlabelled file list, ``sedwatt.data.scan``), its source is the folder's path
on the training machine, and its profile counts the clips of every set the run trained and
validated on. Only metadata is recorded: MLflow never copies the audio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONTEXT = "training"  # the mlflow.data.context tag of the input


def dataset_summary(root: Path | str, data: Any) -> dict[str, Any]:
    """Where the data are, their fingerprint and the clips per set of a ``TrainingData`` (``state.info["dataset"]``)."""
    clips = {
        "synth_train": len(data.synth),
        "weak_train": len(data.weak),
        "unlabelled": len(data.unlabelled),
        "synth_val": len(data.synth_val),
        "weak_val": len(data.weak_val),
    }
    return {"root": str(Path(root).resolve()), "fingerprint": data.fingerprint, "clips": clips}


def dataset_record(summary: dict[str, Any]) -> dict[str, str]:
    """The ``mlflow.entities.Dataset`` fields (name, digest, source_type, source, profile) of a summary."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    root = Path(summary["root"])
    record = MetaDataset(
        LocalArtifactDatasetSource(str(root)), name=root.name, digest=str(summary["fingerprint"])
    ).to_dict()
    clips = {key: int(value) for key, value in (summary.get("clips") or {}).items()}
    record["profile"] = json.dumps({"num_clips": sum(clips.values()), "clips_per_set": clips})
    return record
