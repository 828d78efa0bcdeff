"""Loading and validating mapping files: every error names file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.errors import MappingError
from integrations.mapping import load_mapping, validate_mapping


def errors_of(text: str) -> list[MappingError]:
    return validate_mapping(text, file="m.yaml")


def test_valid_mapping_has_no_errors(push_yaml):
    assert errors_of(push_yaml) == []


def test_typo_in_line_7_names_line_7(push_yaml):
    lines = push_yaml.splitlines()
    assert lines[6].strip() == "event_type: delivery"
    lines[6] = lines[6].replace("event_type", "event_typ")
    errs = errors_of("\n".join(lines))
    assert len(errs) == 1
    assert errs[0].line == 7
    assert "unknown key 'event_typ'" in errs[0].message and "did you mean 'event_type'" in errs[0].message
    assert str(errs[0]).startswith("m.yaml:7:")


def test_unknown_function_points_at_the_call_with_a_suggestion(push_yaml):
    text = push_yaml.replace("format('{}: {}'", "formt('{}: {}'")
    (err,) = errors_of(text)
    line_no = next(i for i, line in enumerate(text.splitlines(), 1) if "formt(" in line)
    assert err.line == line_no
    line = text.splitlines()[line_no - 1]
    assert err.col == line.index("formt(") + 1
    assert "unknown function 'formt()'" in err.message and "did you mean 'format'" in err.message
    assert err.field == "title"
    assert "^" in err.render()


def test_jmespath_syntax_error_column_inside_the_expression(push_yaml):
    text = push_yaml.replace("external_id: item.id", "external_id: item.[id")
    (err,) = errors_of(text)
    line = text.splitlines()[err.line - 1]
    assert "item.[id" in line
    assert err.col > line.index("item")
    assert "syntax error" in err.message


def test_wrong_arity(push_yaml):
    (err,) = errors_of(push_yaml.replace("item.author.name", "lower(item.author.name, 'x')"))
    assert "takes 1 argument(s), got 2" in err.message


def test_required_field_never_set(push_yaml):
    (err,) = errors_of(push_yaml.replace("required: [attributes.sha]", "required: [attributes.shaa]"))
    assert "never set" in err.message and err.field == "attributes.shaa"


def test_missing_core_field(push_yaml):
    (err,) = errors_of(push_yaml.replace("      occurred_at: item.timestamp\n", ""))
    assert "never sets 'occurred_at'" in err.message


def test_unknown_output_field(push_yaml):
    errs = errors_of(push_yaml.replace("attributes.sha: item.id", "atributes.sha: item.id"))
    assert "unknown field 'atributes.sha'" in errs[0].message
    assert "required field 'attributes.sha' is never set" in errs[1].message


def test_wrong_type_and_bad_enum(push_yaml):
    errs = errors_of(push_yaml.replace("event_type: delivery", "event_type: deploy").replace("version: 1", "version: x"))
    messages = " | ".join(e.message for e in errs)
    assert "event_type" in messages and "version" in messages
    assert all(e.line for e in errs)


def test_yaml_syntax_error_has_position():
    (err,) = errors_of("plugin: github\nsource: [push\n")
    assert err.line is not None and "YAML syntax error" in err.message


def test_duplicate_key(push_yaml):
    (err,) = errors_of(push_yaml.replace("version: 1", "version: 1\nversion: 2"))
    assert "duplicate key 'version'" in err.message and err.line == 4


def test_load_raises_the_first_error_and_counts_the_rest(push_yaml):
    text = push_yaml.replace("event_type", "event_typ")
    with pytest.raises(MappingError) as info:
        load_mapping(text, file="m.yaml")
    assert info.value.file == "m.yaml"


def test_load_from_path(tmp_path: Path, push_yaml):
    path = tmp_path / "push.yaml"
    path.write_text(push_yaml)
    mapping = load_mapping(path)
    assert mapping.plugin == "github" and mapping.file == str(path)


def test_unreadable_file_is_a_mapping_error(tmp_path: Path):
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "missing.yaml")


def test_errors_survive_pickling(push_yaml):
    import pickle

    (err,) = errors_of(push_yaml.replace("formt", "x").replace("format(", "formt("))
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.file, copy.line, copy.col, copy.field, copy.message) == (err.file, err.line, err.col, err.field,
                                                                         err.message)
