"""Migrations follow expand/contract (docs/deploy.md, "Schema changes"): a release never drops or
renames what the previous release's code still reads, because that code keeps running (executions
in flight finish on their own release, and a rollback brings it back) after the migration ran.

An expand migration adds: tables, nullable or defaulted columns, wider types, looser constraints.
It may not DROP a table or a column, RENAME, CHANGE a column, TRUNCATE, or drop or replace a
stored procedure or function (one whose behaviour changes gets a new name); each MODIFY must
be declared a widening (`-- widens: <table>.<column>`) that a reviewer can check. A contract migration
removes what an earlier expand made obsolete: it says so on a line `-- contract: <expand id>`
naming an earlier migration, contains nothing else, and ships only in a release after the one
whose code stopped reading what it removes (the deploy procedure's rule; a test cannot see releases).
"""

import re
from pathlib import Path

import pytest

from order_saga.migrate import MIGRATIONS_DIR

CONTRACT = re.compile(r"^--\s*contract:\s*(\S+)", re.MULTILINE)
WIDENS = re.compile(r"^--\s*widens:\s*(\w+)\.(\w+)", re.MULTILINE)
ALTER = re.compile(r"^ALTER\s+TABLE\s+`?(\w+)`?\s+(.*)$", re.IGNORECASE | re.DOTALL)
# A stored procedure or function is dropped or replaced (a changed one gets a new name) by a
# contract step only: the previous release's code calls it.
DESTRUCTIVE_STATEMENT = re.compile(
    r"^(DROP\s+(TABLE|PROCEDURE|FUNCTION)|TRUNCATE|RENAME\s+TABLE|CREATE\s+OR\s+REPLACE)\b", re.IGNORECASE
)
# An ALTER TABLE clause that removes or renames a column (not a key, an index or a constraint).
DROPPED_COLUMN = re.compile(
    r"^DROP\s+(?!(FOREIGN\s+KEY|PRIMARY\s+KEY|INDEX|KEY|CONSTRAINT|CHECK)\b)(COLUMN\s+)?`?\w+",
    re.IGNORECASE,
)
RENAMED = re.compile(r"^(RENAME|CHANGE)\b", re.IGNORECASE)
MODIFIED = re.compile(r"^MODIFY\s+(COLUMN\s+)?`?(\w+)", re.IGNORECASE)


def statements(sql: str) -> list[str]:
    without_comments = re.sub(r"--[^\n]*", "", sql)
    return [" ".join(s.split()) for s in without_comments.split(";") if s.strip()]


def clauses(body: str) -> list[str]:
    """An ALTER TABLE's clauses: split at the commas outside parentheses."""
    found, depth, current = [], 0, ""
    for char in body:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            found.append(current.strip())
            current = ""
        else:
            current += char
    return [*found, current.strip()]


def contract_statements(sql: str) -> list[str]:
    """What in `sql` removes or renames something the previous release may still read."""
    widened = {(table.lower(), column.lower()) for table, column in WIDENS.findall(sql)}
    found = []
    for statement in statements(sql):
        if DESTRUCTIVE_STATEMENT.match(statement):
            found.append(statement)
            continue
        alter = ALTER.match(statement)
        for clause in clauses(alter.group(2)) if alter else []:
            modified = MODIFIED.match(clause)
            assert alter is not None
            if DROPPED_COLUMN.match(clause) or RENAMED.match(clause):
                found.append(f"{alter.group(1)}: {clause}")
            elif modified and (alter.group(1).lower(), modified.group(2).lower()) not in widened:
                found.append(f"{alter.group(1)}: {clause} (not declared `-- widens:`)")
    return found


def violations(path: Path, earlier: list[str]) -> list[str]:
    sql = path.read_text(encoding="utf-8")
    contracted = CONTRACT.findall(sql)
    removing = contract_statements(sql)
    if not contracted:
        return [f"{path.name} removes or renames without being a contract step: {s}" for s in removing]
    wrong = [
        f"{path.name} contracts {m}, which is no earlier migration" for m in contracted if m not in earlier
    ]
    mixed = len(removing) != len(statements(sql))
    return wrong + ([f"{path.name} is a contract step and may do nothing else"] if mixed else [])


def test_every_migration_is_an_expand_step_or_a_declared_contract_of_an_earlier_one() -> None:
    paths = sorted(MIGRATIONS_DIR.glob("*.sql"))
    assert paths
    found = [v for i, path in enumerate(paths) for v in violations(path, [p.stem for p in paths[:i]])]
    assert not found, found


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE notifications;",
        "TRUNCATE saga_log;",
        "RENAME TABLE orders TO purchases;",
        "DROP PROCEDURE saga_reserve_stock;",
        "CREATE OR REPLACE PROCEDURE saga_reserve_stock(IN p_order_id CHAR(36)) SELECT 1;",
        "ALTER TABLE orders DROP COLUMN failure_reason;",
        "ALTER TABLE orders ADD COLUMN note TEXT NULL, DROP failure_reason;",
        "ALTER TABLE orders RENAME COLUMN failure_reason TO reason;",
        "ALTER TABLE orders CHANGE failure_reason reason VARCHAR(255) NULL;",
        "ALTER TABLE orders MODIFY failure_reason VARCHAR(20) NULL;",
        "-- widens: payments.status\nALTER TABLE orders MODIFY failure_reason VARCHAR(20) NULL;",
    ],
)
def test_a_removal_in_an_expand_step_is_refused(sql: str, tmp_path: Path) -> None:
    path = tmp_path / "0100_change.sql"
    path.write_text(sql)
    assert violations(path, ["0001_initial_schema"])


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE refunds (id INT PRIMARY KEY);",
        "CREATE PROCEDURE saga_reserve_stock_v2(IN p_order_id CHAR(36)) SELECT 1;",
        "ALTER TABLE orders ADD COLUMN note VARCHAR(10) NULL, ADD INDEX ix_note (note);",
        "ALTER TABLE inventory_reservations DROP FOREIGN KEY fk_x, DROP INDEX ix_y;",
        "-- widens: orders.note\nALTER TABLE orders MODIFY note VARCHAR(200) NULL;",
    ],
)
def test_additions_and_declared_widenings_are_expand_steps(sql: str, tmp_path: Path) -> None:
    path = tmp_path / "0100_change.sql"
    path.write_text(sql)
    assert violations(path, ["0001_initial_schema"]) == []


def test_a_contract_step_names_an_earlier_expand_and_does_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "0101_drop_note.sql"
    path.write_text("-- contract: 0100_note\nALTER TABLE orders DROP COLUMN failure_reason;")
    assert violations(path, ["0100_note"]) == []
    assert violations(path, ["0099_other"]) == [
        "0101_drop_note.sql contracts 0100_note, which is no earlier migration"
    ]
    path.write_text(
        "-- contract: 0100_note\nALTER TABLE orders DROP COLUMN failure_reason;\nCREATE TABLE t (i INT);"
    )
    assert violations(path, ["0100_note"]) == [
        "0101_drop_note.sql is a contract step and may do nothing else"
    ]
