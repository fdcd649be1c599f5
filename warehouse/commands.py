"""Lake commands: ingest, import-generations, sql, status."""


def register(sub) -> None:
    pass
