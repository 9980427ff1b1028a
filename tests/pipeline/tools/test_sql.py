"""SQL function tools: typed tools from the functions file, bound parameters, a read-only database, checks at load."""

import shutil
import sqlite3
import textwrap

import pytest

from pipeline.errors import ConfigError
from pipeline.tools.settings import BUNDLED_DATABASE, BUNDLED_FUNCTIONS
from pipeline.tools.sql import SqlAlchemyCatalog, SqliteCatalog, sql_function_tool, sql_tools
from pipeline.tools.sql_functions import SqlFunction, load_functions, parse_function


@pytest.fixture
def database(tmp_path):
    """A copy of the bundled catalog, so a test that tried to write could not touch the shipped file."""
    path = tmp_path / "catalog.sqlite"
    shutil.copyfile(BUNDLED_DATABASE, path)
    return path


@pytest.fixture
def tools(database):
    return {item.name: item for item in sql_tools(database, BUNDLED_FUNCTIONS)}


def plan_count(path):
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT count(*) FROM plans").fetchone()[0]
    finally:
        connection.close()


def write_functions(tmp_path, body):
    path = tmp_path / "functions.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_the_bundled_functions_answer_the_demo_questions(tools):
    result = tools["seat_cost"].run({"plan": "Team", "seats": 12})
    assert result.ok
    assert "monthly_cost_usd: 348" in result.text
    assert result.data == [{"plan": "Team", "usd_per_seat_month": 29, "billed_seats": 12, "monthly_cost_usd": 348,
                            "seats_allowed": "yes"}]
    assert "monthly_cost_usd: 790" in tools["seat_cost"].run({"plan": "the Business plan", "seats": "3"}).text
    assert "annual_cost_usd: 16116" in tools["annual_cost"].run({"plan": "business", "seats": 20}).text
    assert tools["cheapest_plan"].run({"seats": 60}).data[0]["plan"] == "Business"
    assert len(tools["list_plans"].run().data) == 4


def test_each_function_is_a_typed_tool_described_to_the_selector(tools):
    assert tools["seat_cost"].signature_text().startswith("seat_cost(plan: string, seats: integer) - The monthly cost")
    assert tools["cheapest_plan"].signature_text().startswith("cheapest_plan(seats: integer, nodes: integer?)")
    assert not any(item.side_effects for item in tools.values())


def test_injection_text_in_a_parameter_is_bound_and_harmless(tools, database):
    before = plan_count(database)
    for payload in ["Team'; DROP TABLE plans; --", "Team' OR '1'='1", "x\"); DELETE FROM plans; --"]:
        result = tools["plan_details"].run({"plan": payload})
        assert result.ok and result.data == []
        assert "No plan is called" in result.text
    assert plan_count(database) == before == 4


def test_wrong_parameter_types_give_a_clear_message(tools):
    result = tools["seat_cost"].run({"plan": "Team", "seats": "twelve"})
    assert not result.ok
    assert result.text == "error: seat_cost: 'seats' must be integer, got 'twelve'"
    missing = tools["seat_cost"].run({"plan": "Team"})
    assert not missing.ok and "needs 'seats'" in missing.text


def test_a_function_reading_an_undeclared_table_is_refused_at_load(tmp_path, database):
    functions = write_functions(tmp_path, """\
        functions:
          - name: sneaky
            description: Reads a table it does not declare.
            parameters: {}
            tables: [plans]
            sql: SELECT p.name, a.price FROM plans AS p JOIN addons AS a ON a.min_plan = p.name
        """)
    with pytest.raises(ConfigError, match=r"'sneaky'.*addons.price is prohibited.*declare every table"):
        sql_tools(database, functions)


def test_a_function_that_writes_is_refused_at_load(tmp_path, database):
    functions = write_functions(tmp_path, """\
        functions:
          - name: wipe
            description: Deletes the plans.
            parameters: {}
            tables: [plans]
            sql: DELETE FROM plans
        """)
    with pytest.raises(ConfigError, match=r"'wipe'.*starts with 'DELETE'.*read-only SELECT"):
        sql_tools(database, functions)
    assert plan_count(database) == 4


def test_the_authorizer_and_read_only_connection_stop_a_write_that_got_past_the_checks(database):
    # Built directly, skipping the file checks, to show the connection itself refuses.
    catalog = SqliteCatalog(database)
    for sql in ["DELETE FROM plans", "SELECT name FROM plans; DROP TABLE plans", "SELECT name FROM addons",
                "SELECT load_extension('x')", "ATTACH DATABASE ':memory:' AS other"]:
        function = SqlFunction("raw", "raw sql", (), sql, ("plans",))
        result = sql_function_tool(function, catalog).run()
        assert not result.ok, sql
        assert result.text.startswith("error: raw")
    assert plan_count(database) == 4


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"sql": "SELECT name FROM plans WHERE name = :plan", "parameters": {}}, r"uses :plan but 'parameters' does not declare"),
        ({"sql": "SELECT name FROM plans", "parameters": {"plan": {"type": "string", "description": "d"}}},
         r"\['plan'\] are declared but the sql never uses"),
        ({"sql": "SELECT 1; SELECT 2"}, "more than one statement"),
        ({"sql": "WITH x AS (SELECT 1) DELETE FROM plans"}, "contains DELETE"),
        ({"sql": "SELECT name INTO backup FROM plans"}, "contains INTO"),
        ({"sql": "SELECT name FROM plans WHERE name = :plan",
          "parameters": {"plan": {"type": "text", "description": "d"}}}, "type 'text'"),
        ({"sql": "SELECT name FROM plans WHERE name = :plan", "parameters": {"plan": {"type": "string"}}}, "needs a description"),
        ({"tables": []}, "'tables' must list every table"),
        ({"description": ""}, "give a 'description'"),
        ({"name": "Bad Name"}, "lower_snake_case"),
        ({"colour": "red"}, "unknown field"),
        ({"empty": "No {plan}"}, r"'empty' names \['plan'\]"),
    ],
)
def test_a_bad_function_declaration_is_a_config_error_naming_the_fix(entry, message):
    base = {"name": "probe", "description": "A probe.", "parameters": {}, "tables": ["plans"], "sql": "SELECT name FROM plans"}
    with pytest.raises(ConfigError, match=message):
        parse_function({**base, **entry})


def test_binds_and_keywords_inside_string_literals_and_comments_do_not_count():
    function = parse_function({"name": "probe", "description": "A probe.", "parameters": {}, "tables": ["plans"],
                               "sql": "SELECT name FROM plans WHERE support_level <> 'drop :x; delete' -- :y"})
    assert function.parameters == ()


def test_an_unknown_table_and_a_missing_database_are_start_up_errors(tmp_path, database):
    functions = write_functions(tmp_path, """\
        functions:
          - name: ghosts
            description: Reads a table that does not exist.
            parameters: {}
            tables: [ghosts]
            sql: SELECT * FROM ghosts
        """)
    with pytest.raises(ConfigError, match=r"'ghosts' reads unknown table\(s\) \['ghosts'\].*'addons', 'plans', 'regions'"):
        sql_tools(database, functions)
    with pytest.raises(ConfigError, match="no SQLite file"):
        sql_tools(tmp_path / "missing.sqlite", BUNDLED_FUNCTIONS)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_functions(write_functions(tmp_path, "functions: [\n"))


def test_a_sqlalchemy_url_binds_parameters_too(database):
    catalog = SqlAlchemyCatalog(f"sqlite:///{database}")
    assert {"plans", "addons", "regions"} <= catalog.table_names()
    [function] = [f for f in load_functions(BUNDLED_FUNCTIONS) if f.name == "seat_cost"]
    tool = sql_function_tool(function, catalog)
    assert tool.run({"plan": "Team", "seats": 12}).data[0]["monthly_cost_usd"] == 348
    assert tool.run({"plan": "Team'; DROP TABLE plans; --", "seats": 1}).data == []
    assert plan_count(database) == 4


def test_a_url_sqlalchemy_cannot_use_is_a_start_up_error():
    with pytest.raises(ConfigError, match="not a usable SQLAlchemy URL"):
        SqlAlchemyCatalog("nosuchdialect://host/db")


def test_the_shipped_database_matches_its_sql_source(tmp_path):
    from eval_sets.tools.build_catalog import SOURCE, build

    rebuilt = build(SOURCE, tmp_path / "rebuilt.sqlite")
    dump = [list(sqlite3.connect(path).iterdump()) for path in (BUNDLED_DATABASE, rebuilt)]
    assert dump[0] == dump[1], "catalog.sqlite is stale: run python eval_sets/tools/build_catalog.py and commit it"


def test_a_runaway_query_is_stopped_at_its_timeout(database):
    from pipeline.tools.base import ToolError

    huge = SqlFunction("huge", "a cross join", (), "SELECT count(*) FROM " + ", ".join(f"plans AS p{i}" for i in range(16)),
                       ("plans",))
    started = __import__("time").monotonic()
    with pytest.raises(ToolError, match="took longer than 0.2 s"):
        SqliteCatalog(database).query(huge, {}, timeout_s=0.2)
    assert __import__("time").monotonic() - started < 2
