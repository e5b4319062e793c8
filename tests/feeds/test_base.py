"""The shared splitting helpers: JSON, NDJSON and CSV items."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.errors import PayloadError
from feeds.base import BadJson, csv_items, json_items, raw_bytes
from tests.conftest import ROOT


def test_ndjson_lines_end_at_newline_only():
    # JSON allows U+2028 and \x1c unescaped inside strings; they must not split a line
    lines = [json.dumps({"id": 1, "text": "a\u2028b"}, ensure_ascii=False),
             json.dumps({"id": 2, "text": "c\x1cd"}, ensure_ascii=False)]
    items = list(json_items("\n".join(lines).encode()))
    assert [value["id"] for _, _, value in items] == [1, 2]
    assert items[0][2]["text"] == "a\u2028b"


def test_ndjson_bad_line_is_an_item_not_the_whole_payload():
    items = list(json_items(b'{"id": 1}\n{"id": \n{"id": 3}\n'))
    assert [type(v) for _, _, v in items] == [dict, BadJson, dict]
    assert raw_bytes(items[1][1]) == b'{"id": '


@pytest.mark.parametrize("payload, needle", [
    (b"", "empty"), (b"   ", "empty"), (b"{oops", "not JSON"), (b"\xff\xfe\x00", "UTF-8"),
    (b"[1, 2", "not JSON"), (b"NaN", "not JSON"), (b"[1e999]", "not JSON"),
    (b"[" * 5000 + b"]" * 5000, "depth"),
], ids=["empty", "blank", "broken", "binary", "truncated", "nan", "overflow", "deep"])
def test_unreadable_json_payloads_raise(payload, needle):
    with pytest.raises(PayloadError, match=needle):
        list(json_items(payload))


def test_hostile_nesting_cannot_crash_the_process():
    # 2 MB of brackets once segfaulted an older orjson; run it in a child so a crash fails the test
    code = ("from feeds.base import json_items\n"
            "from core.errors import PayloadError\n"
            "try:\n    list(json_items(b'[' * 1_000_000 + b']' * 1_000_000))\n"
            "except PayloadError as err:\n    print('rejected:', err)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-500:]
    assert "rejected: payload is not JSON" in done.stdout


def test_array_items_raw_is_made_only_on_demand():
    (index, raw, value), = json_items(b'[{"a": "\xc3\xa9"}]')
    assert index == 0 and value == {"a": "é"}
    assert callable(raw) and json.loads(raw_bytes(raw)) == {"a": "é"}


def test_csv_rows_with_quoted_line_breaks_and_odd_separators():
    payload = 'id,text\r\n1,"two\nlines"\r\n2,"u\u2028v"\r\n3,plain\r\n'.encode()
    rows = [(i, v) for i, _, v in csv_items(payload, required=["id"])]
    assert rows == [(0, {"id": "1", "text": "two\nlines"}), (1, {"id": "2", "text": "u\u2028v"}),
                    (2, {"id": "3", "text": "plain"})]


def test_csv_row_with_wrong_cell_count_is_a_bad_item():
    items = list(csv_items(b"a,b\n1,2\n3\n4,5\n", required=["a"]))
    assert isinstance(items[1][2], BadJson) and "1 cells" in items[1][2].error
    assert items[2][2] == {"a": "4", "b": "5"}


def test_csv_missing_column_names_what_is_there():
    with pytest.raises(PayloadError, match="lacks column.*station_id.*it has a, b"):
        list(csv_items(b"a,b\n1,2\n", required=["station_id"]))
