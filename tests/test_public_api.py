"""The public API is small and pinned: changing it is a decision, not an accident."""

import integrations


def test_public_names_are_pinned():
    assert sorted(integrations.__all__) == [
        "CanonicalEvent", "EventStore", "IntegrationsError", "MapResult", "MappingEngine", "MappingError",
        "PythonEngine", "RecordError", "get_engine", "load_mapping", "validate_mapping",
    ]
    for name in integrations.__all__:
        assert getattr(integrations, name) is not None


def test_every_user_facing_error_shares_one_root():
    from integrations import errors

    classes = [getattr(errors, n) for n in dir(errors) if n.endswith("Error") and isinstance(getattr(errors, n), type)]
    assert all(issubclass(c, errors.IntegrationsError) for c in classes)
