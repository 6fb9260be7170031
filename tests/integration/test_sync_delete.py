"""`samestyle ingest --sync` and `samestyle delete` (#12) through the CLI against a real
Milvus Lite and the real ONNX encoder: products a full catalogue no longer lists are
removed (dry run first; refused, writing nothing, above the share or with unreadable
ids, unless --force); delete by ids or a file, hostile ids escaped."""

from __future__ import annotations

import json

from click.testing import CliRunner

from samestyle import contract as C
from samestyle.config import Settings
from samestyle.store import Store
from tests.fixtures.milvus import subprocess_env

HOSTILE = 'q"1\\ or id != ""'


def _cli(data_dir, *args):
    from samestyle.cli.main import cli

    return CliRunner().invoke(cli, [*map(str, args), "--json"], env=subprocess_env(Settings(data_dir=data_dir)),
                              catch_exceptions=False)


def _ingest(data_dir, path, *extra):
    return _cli(data_dir, "ingest", path, "--encoder", "onnx", "--no-progress", "--category-col", "category", *extra)


def _catalogue(path, ids, extra_lines=()):
    def q(s):
        return '"' + s.replace('"', '""') + '"'
    path.write_text("id,title,category\n" + "".join(f"{q(i)},Cotton tee {i},Tshirts\n" for i in ids)
                    + "".join(extra_lines))
    return path


def _ids(data_dir) -> set[str]:
    with Store.open(Settings(data_dir=data_dir)) as store:
        return store.ids(store.alias_target(C.COLLECTION_ALIAS))


def test_sync_removes_what_the_catalogue_no_longer_lists(tmp_path):
    data = tmp_path / "data"
    first = [f"p{i:02d}" for i in range(20)]
    res = _ingest(data, _catalogue(tmp_path / "v1.csv", first))
    assert res.exit_code == 0, res.output
    assert _ids(data) == set(first)

    # One product gone, one new: the dry run lists it and writes nothing.
    v2 = _catalogue(tmp_path / "v2.csv", [*first[:19], "n1"])
    res = _ingest(data, v2, "--sync", "--dry-run")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)["sync"]
    assert (plan["remove"], plan["stored"], plan["in_catalogue"], plan["refused"]) == (["p19"], 20, 20, None)
    assert _ids(data) == set(first)

    res = _ingest(data, v2, "--sync")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert (rep["sync"]["removed"], rep["loaded"], rep["count"]) == (["p19"], 1, 20)
    assert _ids(data) == {*first[:19], "n1"}

    # A half catalogue (an export cut short) would remove 50%: refused, nothing written.
    half = _catalogue(tmp_path / "half.csv", [*first[:9], "n1", "n2"])
    res = _ingest(data, half, "--sync")
    assert res.exit_code == 2, res.output
    err = json.loads(res.stdout)["error"]
    assert "refused, nothing written" in err["message"] and "over --sync-max-share 10%" in err["message"]
    assert "--force" in err["fix"]
    assert _ids(data) == {*first[:19], "n1"}  # n2 not loaded either

    # Records without a readable id could be products it would wrongly remove: refused too.
    broken = _catalogue(tmp_path / "broken.csv", [*first[:19]], ['"n1,Cotton tee,Tshirts\n'])
    res = _ingest(data, broken, "--sync", "--sync-max-share", "50%")
    assert res.exit_code == 2, res.output
    assert "no readable id" in json.loads(res.stdout)["error"]["message"]

    res = _ingest(data, half, "--sync", "--force")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert sorted(rep["sync"]["removed"]) == sorted(first[9:19]) and rep["count"] == 11
    assert _ids(data) == {*first[:9], "n1", "n2"}


def test_delete_by_ids_and_from_a_file(tmp_path):
    data = tmp_path / "data"
    ids = ["a1", "a2", "a3", "a4", HOSTILE]
    res = _ingest(data, _catalogue(tmp_path / "c.csv", ids))
    assert res.exit_code == 0, res.output

    res = _cli(data, "delete", "a1", "zz", "--dry-run")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["would_delete"] == ["a1"] and _ids(data) == set(ids)

    res = _cli(data, "delete", "a1", "zz")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["deleted"], out["missing"]) == (["a1"], ["zz"])

    # A hostile id deletes itself and nothing else (escaped into the filter expression).
    gone = tmp_path / "gone.txt"
    gone.write_text(f"a2\n\n{HOSTILE}\n")
    res = _cli(data, "delete", "--file", gone)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["deleted"] == ["a2", HOSTILE]
    assert _ids(data) == {"a3", "a4"}

    res = _cli(data, "delete")
    assert res.exit_code == 2 and "no product ids" in json.loads(res.stdout)["error"]["message"]
