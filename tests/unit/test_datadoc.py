"""README's data table is generated from group_data/all.py and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from sparkdeploy.data import documented_defaults
from sparkdeploy.datadoc import BEGIN, END, data_key_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_data_key_has_a_comment():
    undocumented = [line for line in data_key_table().splitlines()
                    if line.startswith("| `") and line.endswith("|  |")]
    assert undocumented == []


def test_readme_table_lists_every_key_of_group_data_all():
    table = data_key_table()
    assert all(f"| `{key}` |" in table for key in documented_defaults())
    readme = README.read_text()
    assert readme[readme.index(BEGIN) + len(BEGIN):readme.index(END)].strip() == table, (
        "README's data table is stale: run python -m sparkdeploy.datadoc --write README.md")
