"""Placeholder until this stage lands."""


def register(sub) -> None:
    pass
