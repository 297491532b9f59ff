"""How the mediator names the types and callables it reports on."""

import functools


def qualified_name(obj: object) -> str:
    """``module.QualName`` of a class or function; a partial or callable object is named
    after what it wraps or its class, so a start-up error always points at real code."""
    if isinstance(obj, functools.partial):
        return f"partial({qualified_name(obj.func)})"
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(qualname, str):
        cls = type(obj)
        return f"{cls.__module__}.{cls.__qualname__}"
    module = getattr(obj, "__module__", None)
    return f"{module}.{qualname}" if module else qualname
