"""`hindsight-migrate merge`: one merge revision joins the chain's heads (what check asks for when it finds
several); with a single head there is nothing to merge.
"""

from __future__ import annotations

import json
from pathlib import Path

from hindsight_migrate.errors import ExitCode
from tests.conftest import REPO, assert_failure, flatten, invoke
from tests.harness.projects import Rev, write_project


def test_two_heads_fail_check_and_merge_fixes_it(tmp_path: Path, database_url: str) -> None:
    ini = write_project(
        tmp_path / "p",
        [
            Rev("aaaa00000001", ()),
            Rev(
                "bbbb00000002",
                ("aaaa00000001",),
                upgrade='op.execute("CREATE TABLE b (i int)")',
                downgrade='op.execute("DROP TABLE b")',
            ),
            Rev(
                "cccc00000003",
                ("aaaa00000001",),
                upgrade='op.execute("CREATE TABLE c (i int)")',
                downgrade='op.execute("DROP TABLE c")',
            ),
        ],
    )
    # The scaffold's template for new files.
    (ini.parent / "migrations" / "script.py.mako").write_text(
        (REPO / "migrations" / "script.py.mako").read_text()
    )

    checked = invoke("-c", str(ini), "--url", database_url, "check")
    assert checked.exit_code == ExitCode.CHECK_FAILED, checked.output
    assert "2 heads: bbbb00000002, cccc00000003" in flatten(checked.stdout)
    assert "hindsight-migrate merge" in checked.stdout

    merged = invoke("-c", str(ini), "merge", "-m", "join b and c")
    assert merged.exit_code == 0, merged.output
    history = json.loads(invoke("-c", str(ini), "history", "--offline", "--json").stdout)
    assert len(history["heads"]) == 1
    merge = next(e for e in history["entries"] if e["info"]["revision"] == history["heads"][0])
    assert sorted(merge["info"]["parents"]) == ["bbbb00000002", "cccc00000003"]
    assert merge["info"]["message"] == "join b and c"

    again = invoke("-c", str(ini), "merge")
    assert_failure(again, ExitCode.REFUSED, "nothing to merge")
