"""审计 page against a real gateway: the hash chain shown is the audit log's, "verify" reports every
event ✓ on a clean case, the proofs are the API's, the time slider shows what `?as_of=` answers (an
inspector's token), the downloads carry the history, and a viewer-only dashboard explains itself."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from dashboard.formatting import china_time
from dashboard.i18n import COMMON
from dashboard.timeline import TEXT as TIMELINE
from dashboard.timeline import short_hash
from domain.actors import Actor
from projections.audit_verify import cli_sign
from tests.integration.builders import drive, run_full_loop
from tests.integration.dashboard.conftest import Stack

PAGE = "pages/audit.py"


@dataclass(frozen=True)
class Seeded:
    case_id: UUID  # the full loop: 22 events, all under the signed head
    history: list[dict[str, Any]]


@pytest.fixture(scope="module")
def seeded(stack: Stack, actors: dict[str, Actor]) -> Seeded:
    """A full loop and a whistled case, projected, and a tree head signed over all of it."""
    case_id = run_full_loop(stack.service, stack.clock, actors).case_id
    drive(stack.service, stack.clock, actors, "whistled", title="路灯损坏")
    stack.settle()
    assert cli_sign(stack.settings) == 0
    return Seeded(case_id, stack.api(f"/api/v1/cases/{case_id}/history"))


class Recording(MemoryMediaFileStorage):
    """The media storage AppTest uses, remembering what each download button would serve."""

    files: ClassVar[dict[str, bytes]] = {}

    def load_and_get_id(
        self, path_or_data: str | bytes, mimetype: str, kind: Any, filename: str | None = None
    ) -> str:
        if filename and isinstance(path_or_data, bytes):
            Recording.files[filename] = path_or_data
        return super().load_and_get_id(path_or_data, mimetype, kind, filename)


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    Recording.files = {}
    monkeypatch.setattr("streamlit.testing.v1.app_test.MemoryMediaFileStorage", Recording)
    return Recording.files


def audit_page(stack: Stack, case_id: UUID | None = None, lang: str = "zh", **app: Any) -> AppTest:
    at = stack.open_page(PAGE, lang=lang, **app)
    if case_id is not None:
        at.text_input(key="audit.case_id").input(str(case_id)).run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, column: str) -> Any:
    """The page's table with this column (tables are told apart by what they show)."""
    found = [frame.value for frame in at.dataframe if column in frame.value.columns]
    assert len(found) == 1, [list(frame.value.columns) for frame in at.dataframe]
    return found[0]


def test_the_chain_shown_is_the_audit_logs(stack: Stack, seeded: Seeded) -> None:
    at = audit_page(stack, seeded.case_id)
    chain = table(at, "链哈希")
    history = seeded.history
    assert list(chain["版本"]) == list(range(1, 23))
    assert list(chain["事件"]) == [TIMELINE[f"event.{e['event_type']}"][0] for e in history]
    assert list(chain["叶哈希"]) == [short_hash(e["leaf_hash"]) for e in history]
    assert list(chain["链哈希"]) == [short_hash(e["chain_hash"]) for e in history]
    full = table(at, "chain_hash")  # the expander's full values
    assert list(full["leaf_hash"]) == [e["leaf_hash"] for e in history]
    assert list(full["chain_hash"]) == [e["chain_hash"] for e in history]


def test_verify_reports_every_event_ok_on_a_clean_case(stack: Stack, seeded: Seeded) -> None:
    at = audit_page(stack, seeded.case_id)
    at.button(key="audit.verify").click().run()
    assert not at.exception
    answer = stack.api(f"/api/v1/cases/{seeded.case_id}/verify")
    assert answer["ok"] is True
    assert any("校验通过" in s.value for s in at.success)
    results = table(at, "结果")
    assert list(results["版本"]) == [e["version"] for e in answer["events"]]
    for column in ("结果", "叶哈希", "链", "包含证明"):
        assert set(results[column]) == {"✓"}, column
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["树头签名（Ed25519）"] == "✓"
    assert metrics["签名树头规模"] == f"{answer['tree_size']:,}"


def test_the_inclusion_proofs_are_the_apis(stack: Stack, seeded: Seeded) -> None:
    at = audit_page(stack, seeded.case_id)
    proof = stack.api(f"/api/v1/cases/{seeded.case_id}/proof")
    shown = table(at, "叶序号")
    assert list(shown["叶序号"]) == [e["leaf_index"] for e in proof["events"]]
    assert list(shown["树规模"]) == [proof["tree_head"]["tree_size"]] * 22
    paths = [" → ".join(short_hash(node) for node in e["proof"]) for e in proof["events"]]
    assert list(shown["审计路径"]) == paths
    head = proof["tree_head"]
    assert any(f"规模 {head['tree_size']:,}" in c.value for c in at.caption)


def test_the_slider_shows_the_case_as_it_stood_then(stack: Stack, seeded: Seeded) -> None:
    at = audit_page(stack, seeded.case_id)
    slider = at.select_slider(key="audit.moment")
    assert list(slider.options) == [
        china_time(e["timestamp"], with_seconds=True) for e in seeded.history
    ]
    moment = seeded.history[7]["timestamp"]  # after the hand-off
    slider.set_value(moment).run()
    assert not at.exception
    then = stack.api(
        f"/api/v1/cases/{seeded.case_id}", token=stack.token("inspector"), as_of=moment
    )
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["版本"] == str(then["version"]) == "8"
    assert metrics["状态"] == COMMON[f"status.{then['case']['status']}"][0]
    assert metrics["主责部门"] == then["case"]["lead_department"]
    assert (
        at.json[-1].value == json.dumps(then["case"])
        or json.loads(at.json[-1].value) == (then["case"])
    )


def test_the_downloads_carry_the_history(
    stack: Stack, seeded: Seeded, downloads: dict[str, bytes]
) -> None:
    at = audit_page(stack, seeded.case_id)
    assert [b.label for b in at.download_button] == ["下载 CSV", "下载 JSON"]
    name = f"case-{seeded.case_id}-history"
    rows = list(csv.DictReader(io.StringIO(downloads[f"{name}.csv"].decode("utf-8-sig"))))
    assert len(rows) == len(seeded.history) == 22
    assert [int(r["version"]) for r in rows] == [e["version"] for e in seeded.history]
    assert [r["leaf_hash"] for r in rows] == [e["leaf_hash"] for e in seeded.history]
    assert [json.loads(r["payload"]) for r in rows] == [e["payload"] for e in seeded.history]
    document = json.loads(downloads[f"{name}.json"])
    assert document == {"case_id": str(seeded.case_id), "events": seeded.history}


def test_a_viewer_only_dashboard_explains_time_travel(stack: Stack, seeded: Seeded) -> None:
    at = audit_page(stack, seeded.case_id, inspector="")
    assert any("时光回溯需要纪检监察" in i.value for i in at.info)
    assert not at.get("select_slider")
    at.text_input(key="audit.case_id").input("not-a-case").run()
    assert not at.exception
    assert any("UUID" in w.value for w in at.warning)


def test_in_english_after_verifying(stack: Stack, seeded: Seeded) -> None:
    at = audit_page(stack, seeded.case_id)
    # What the sidebar's radio sets (after a switch AppTest runs the page alone, for one run).
    at.session_state["lang"] = "en"
    at.button(key="audit.verify").click().run()
    assert not at.exception
    assert at.title[0].value == "Audit"
    assert any("Verified" in s.value for s in at.success)
    assert set(table(at, "Result")["Included"]) == {"✓"}
    assert [b.label for b in at.download_button] == ["Download CSV", "Download JSON"]
