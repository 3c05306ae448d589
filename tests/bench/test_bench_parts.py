"""The benchmark's pure parts: reading py-spy's output and the closing table of targets."""

from __future__ import annotations

from bench.core import Ratio

from bench import profile, targets

RAW = [
    "<module> (/v/lib/python3.11/site-packages/gunicorn/app/base.py:1);"
    "post (/w/platform/erp/ledger/routes.py:120);"
    "execute (/v/lib/python3.11/site-packages/sqlalchemy/orm/session.py:2200) 30",
    "<module> (/v/lib/python3.11/site-packages/gunicorn/app/base.py:1);"
    "post (/w/platform/erp/ledger/routes.py:120) 10",
    "<module> (/v/lib/python3.11/site-packages/gunicorn/app/base.py:1);"
    "dumps (/usr/lib/python3.11/json/__init__.py:183) 5",
    "a line that is no stack",
]


def test_py_spy_raw_output_gives_self_cumulative_and_package_shares() -> None:
    samples, self_counts, cumulative = profile.parse_raw(RAW)
    assert samples == 45
    assert self_counts == {
        "execute (sqlalchemy/orm/session.py)": 30,
        "post (erp/ledger/routes.py)": 10,
        "dumps (json/__init__.py)": 5,
    }
    assert cumulative["post (erp/ledger/routes.py)"] == 40
    assert cumulative["<module> (gunicorn/app/base.py)"] == 45
    top = profile.Profile(samples, 1.0, 100, self_counts, cumulative).top(2)
    assert [r["frame"] for r in top["self"]] == [
        "execute (sqlalchemy/orm/session.py)",
        "post (erp/ledger/routes.py)",
    ]
    # cumulative is shown for the app's own frames: the outer ones fill every stack
    assert [r["frame"] for r in top["cumulative_app"]] == ["post (erp/ledger/routes.py)"]
    assert top["self_by_package"][0] == {"frame": "sqlalchemy", "samples": 30, "share": 0.6667}


def test_a_profile_without_samples_says_why() -> None:
    lines = profile.Profile(error="Permission denied").lines("profile")
    assert lines == ["profile: no profile (Permission denied)"]


def test_the_closing_table_has_every_target_and_says_which_did_not_run() -> None:
    found = {
        "me rps": Ratio(
            "me/healthz",
            0.5,
            "d",
            target=0.6,
            higher_is_worse=False,
            headline="me rps",
            figure="50 req/s",
            reference="100 req/s",
        )
    }
    items = targets.rows(found, quick=False)
    assert [i["key"] for i in items] == [t.key for t in targets.TARGETS]
    me = next(i for i in items if i["key"] == "me rps")
    assert (me["value"], me["ratio"], me["target"], me["verdict"]) == (
        "50 req/s",
        0.5,
        "≥ 0.6",
        "MISSES TARGET",
    )
    text = targets.table(items)
    assert "| 50 req/s " in text
    assert text.count("not measured") == len(targets.TARGETS) - 1
