"""The committed sample databases read back whole: every row fits its table's columns, keys name
real columns, every foreign key value has its parent row, and the row counts are the ones each
sample's LICENSE.md states."""

from __future__ import annotations

import re

import pytest

from jobs.devtools.samples import SAMPLES, SAMPLES_DIR, read_rows, read_tables


@pytest.mark.parametrize("sample", SAMPLES)
def test_a_sample_reads_whole_with_its_references_kept(sample: str) -> None:
    tables = {t.name: t for t in read_tables(sample)}
    rows = {name: list(read_rows(sample, table)) for name, table in tables.items()}
    stated = dict(re.findall(r"(\w+) ([\d,]+)[,.]", (SAMPLES_DIR / sample / "LICENSE.md").read_text().split("Rows: ")[1]))
    assert {name: len(found) for name, found in rows.items()} == {n: int(c.replace(",", "")) for n, c in stated.items()}
    for name, table in tables.items():
        names = [c.name for c in table.columns]
        assert set(table.primary_key) <= set(names)
        keys = [tuple(row[names.index(c)] for c in table.primary_key) for row in rows[name]]
        assert len(set(keys)) == len(keys), f"{name}: duplicate primary keys"
        for row in rows[name]:
            for column, value in zip(table.columns, row, strict=True):
                assert value is not None or column.nullable, f"{name}.{column.name} is NULL"
        for column, parent, parent_column in table.foreign_keys:
            parent_names = [c.name for c in tables[parent].columns]
            known = {row[parent_names.index(parent_column)] for row in rows[parent]}
            values = {row[names.index(column)] for row in rows[name]} - {None}
            assert values <= known, f"{name}.{column} -> {parent}.{parent_column}: {sorted(values - known)[:5]}"
