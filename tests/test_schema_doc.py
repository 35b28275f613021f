"""docs/artifacts.md's schema tables are the generator's output, and list every dataset the readers check."""

import pytest

from stages.artifacts.schema_doc import BEGIN, DOC, END, generated_block, schema_tables, shown_name, with_tables
from stages.artifacts.schemas import CLUSTERS, EVAL, FEATURES, MODEL, SCHEMAS, SPLIT_COLUMNS, writer_of
from stages.errors import AuxReidError


def test_docs_schema_tables_are_up_to_date():
    found = generated_block(DOC.read_text(encoding="utf-8"))
    assert found == schema_tables(), (
        "docs/artifacts.md's schema tables differ from the schemas; run `python -m stages.artifacts.schema_doc "
        "--write` (or paste the output of `python -m stages.artifacts.schema_doc` between its markers)")


def test_every_column_has_shape_and_meaning_and_appears():
    tables = schema_tables()
    for schema in SCHEMAS:
        for pattern, column in schema.columns:
            assert column.shape and column.meaning, f"{schema.name} {pattern}"
            in_split_row = schema is not FEATURES and (pattern, column) in SPLIT_COLUMNS
            assert in_split_row or f"`{shown_name(pattern)}`" in tables, f"{schema.name} {pattern}"
    for name in (*CLUSTERS.required, *EVAL.required):
        assert f"`{shown_name(name)}`" in tables or name.split("/")[0] in ("query", "gallery"), name


def test_generated_block_is_replaced_and_missing_markers_are_named():
    text = f"intro\n{BEGIN}\nold table\n{END}\nafter\n"
    assert with_tables(text) == f"intro\n{BEGIN}\n{schema_tables()}\n{END}\nafter\n"
    assert generated_block(with_tables(text)) == schema_tables()
    with pytest.raises(AuxReidError, match=r"^x.md has no '<!-- generated"):
        generated_block("no markers", "x.md")


def test_writer_of_every_schema_and_model():
    assert [writer_of(s.name) for s in SCHEMAS] == ["extract", "mine-aux", "cluster", "evaluate"]
    assert writer_of(MODEL) == "train-round"
    with pytest.raises(KeyError, match="no artifact schema 'config'"):
        writer_of("config")
