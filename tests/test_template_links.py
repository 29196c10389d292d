"""Templates are compiled into the Plan: none may come from outside the journey's folder, by '../' or by a
symlink (issue 13: a .txt.j2 twin linked to /proc/self/environ put the process's secrets into the Plan)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.language import catalog

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(REPO / "journeys" / "re_engagement.yaml", tmp_path)
    shutil.copytree(REPO / "journeys" / "emails", tmp_path / "emails")
    shutil.copy(REPO / "journeys" / "services.yaml", tmp_path)
    return tmp_path


def messages(folder: Path) -> list[str]:
    return [issue.message for issue in catalog.validate([folder / "re_engagement.yaml"]).issues]


def test_text_twin_linked_outside_is_refused(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_TEST_SECRET", "do-not-leak")
    twin = folder / "emails" / "reengage_checkin.txt.j2"
    twin.unlink()
    twin.symlink_to("/proc/self/environ")
    result = catalog.validate([folder / "re_engagement.yaml"])
    assert [issue.message for issue in result.issues] == [
        f"template: 'emails/reengage_checkin.txt.j2' is a link to '{Path('/proc/self/environ').resolve()}', "
        "outside the journey's folder: copy the template into the folder"
    ]
    assert not result.plans
    assert "do-not-leak" not in repr(result) and os.environ["JOURNEY_TEST_SECRET"] == "do-not-leak"


def test_template_linked_outside_is_refused(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "checkin.html.j2"
    shutil.copy(folder / "emails" / "reengage_checkin.html.j2", elsewhere)
    (folder / "emails" / "reengage_checkin.html.j2").unlink()
    (folder / "emails" / "reengage_checkin.html.j2").symlink_to(elsewhere)
    assert messages(folder) == [
        f"template: 'emails/reengage_checkin.html.j2' is a link to '{elsewhere}', outside the journey's folder: "
        "copy the template into the folder"
    ]


def test_links_within_the_folder_are_fine(folder: Path) -> None:
    shared = folder / "shared"
    (folder / "emails").rename(shared)
    (folder / "emails").symlink_to(shared)
    assert messages(folder) == []
