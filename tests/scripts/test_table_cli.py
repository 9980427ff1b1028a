"""ingest.py --table and query.py --where as a user runs them (in this process): a bad filter or a bad table is one
clear message and exit 2; a table is indexed, then synced with nothing to do."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def test_a_bad_where_filter_points_at_the_position_before_anything_loads(script, tmp_path):
    code, _, err = script("query.py", "keys?", "--where", 'product = gateway', "--store", str(tmp_path / "s"))
    assert code == 2 and "at position 11" in err and "quote strings" in err and "^" in err


@pytest.mark.slow
def test_a_table_is_indexed_then_synced_with_nothing_to_do_and_a_bad_one_changes_nothing(script, tmp_path):
    table = tmp_path / "products.parquet"
    pq.write_table(pa.table({"id": [1, 2], "body": ["rotate the gateway keys", "restart the broker"],
                             "product": ["gateway", "broker"]}), table)
    args = ["--table", str(table), "--text", "body", "--metadata", "product", "--store", str(tmp_path / "s")]
    code, out, err = script("ingest.py", *args)
    assert code == 0, err
    assert "2 rows indexed, 0 unchanged" in out
    code, out, _ = script("ingest.py", *args)
    assert code == 0 and "0 rows indexed, 0 unchanged, 0 deleted; 0 chunks written" in out
    pq.write_table(pa.table({"id": [1, 1], "body": ["a", "b"], "product": ["x", "y"]}), table)
    code, _, err = script("ingest.py", *args)
    assert code == 2 and "ids repeat in 'id'" in err

