"""The project's exception hierarchy: every error a user can cause is a TesseraError with the fix in its message."""

from guardrails.errors import GuardConfigError, GuardrailError

__all__ = [
    "CollectionNotFoundError",
    "ConfigError",
    "EvalSetError",
    "GuardConfigError",
    "GuardrailError",
    "IngestError",
    "LMError",
    "QueryError",
    "StoreError",
    "StoreLockedError",
    "TesseraError",
    "TraceNotFoundError",
    "UnsupportedFileError",
    "UntrustedModelError",
]


class TesseraError(Exception):
    """Base of every error Tessera raises on purpose."""


class ConfigError(TesseraError, GuardConfigError):
    """Invalid configuration: a bad value in tessera.yaml or a TESSERA_* variable."""


class IngestError(TesseraError):
    """A document folder or file that cannot be ingested."""


class StoreError(TesseraError):
    """The vector store cannot do what was asked."""


class StoreLockedError(StoreError):
    """The store folder is in use by another process."""


class CollectionNotFoundError(StoreError):
    """The named collection does not exist in the store."""


class QueryError(TesseraError):
    """A question that cannot be answered as given (empty, too long, …)."""


class LMError(TesseraError):
    """The language model cannot be loaded or called."""


class UnsupportedFileError(IngestError):
    """A file whose format Tessera cannot parse (judged by its suffix)."""


class EvalSetError(TesseraError):
    """An eval set file that cannot be used as given (missing, malformed line, missing fields)."""


class UntrustedModelError(TesseraError):
    """A model Tessera will not load: it cannot be shown to be the model that was registered, or it is pickled."""


class TraceNotFoundError(TesseraError):
    """A trace id that names no served request in the tracking store."""
