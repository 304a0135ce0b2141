"""The committed staging models (and the apnoea model), read from the artefacts that ship with the core.

The core defines the model (:class:`core.nights.classifier.StageModel`) and never reads a
file; the artefacts are package data of ``core.nights`` (``core/nights/models/<name>.json``
and its ``<name>.card.json``), so they travel in the Glue wheel and the Lambda zip with
the code that reads them. This module is the one place that opens them.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from core.nights.apnoea import APNOEA_MODEL, ApnoeaModel
from core.nights.classifier import DEFAULT_MODEL, RR_MODEL, StageModel, StageModels

__all__ = ["bundled", "load_apnoea_model", "load_model", "model_card", "model_cards", "model_resource"]


def model_resource(name: str = DEFAULT_MODEL) -> Traversable:
    """Where the artefact ``name`` ships: ``core/nights/models/<name>.json``."""
    return resources.files("core.nights").joinpath("models", f"{name}.json")


def model_card(name: str = DEFAULT_MODEL) -> dict[str, Any]:
    """What a model reads and how accurate it measured on nights it never saw
    (``core/nights/models/<name>.card.json``: kappas, accuracies, TST error, the command that measured them)."""
    card: dict[str, Any] = json.loads(
        resources.files("core.nights").joinpath("models", f"{name}.card.json").read_text()
    )
    return card


def model_cards() -> dict[str, dict[str, Any]]:
    """The card of every committed model, by name (a night's ``method`` names the one that staged it,
    its ``apnoea_model`` the apnoea detector)."""
    return {name: model_card(name) for name in (DEFAULT_MODEL, RR_MODEL, APNOEA_MODEL)}


def load_model(name: str = DEFAULT_MODEL) -> StageModel:
    """A model artefact shipped in ``core/nights/models/<name>.json``; :class:`KeyError` if none."""
    try:
        text = model_resource(name).read_text()
    except FileNotFoundError:
        raise KeyError(f"no stage model named {name!r} in core/nights/models") from None
    return StageModel.from_json(text)


@cache
def bundled() -> StageModels:
    """The committed pair staging chooses between, read once per process."""
    return StageModels(hr=load_model(DEFAULT_MODEL), rr=load_model(RR_MODEL), apnoea=load_apnoea_model())


def load_apnoea_model(name: str = APNOEA_MODEL) -> ApnoeaModel:
    """The apnoea detector shipped in ``core/nights/models/<name>.json`` (its card: ``model_card(name)``);
    :class:`KeyError` if none."""
    try:
        text = model_resource(name).read_text()
    except FileNotFoundError:
        raise KeyError(f"no apnoea model named {name!r} in core/nights/models") from None
    return ApnoeaModel.from_json(text)
