"""Outputs are whole or absent: staged beside the target, moved in at the end, manifest written last;
a target that cannot be written is one line naming it, and the results are kept elsewhere."""

from __future__ import annotations

import errno
import os
import signal
import threading
from pathlib import Path

import pytest

from hetsim.errors import ScenarioError
from hetsim.io import outputs
from hetsim.io.outputs import (
    MANIFEST,
    Provenance,
    Target,
    held_ctrl_c,
    incomplete_path,
    inputs_digest,
    verify_folder,
    write_file,
    write_folder,
    write_outputs,
)
from tests.conftest import needs_ctrl_c

PROVENANCE = Provenance("test", {"seed": 3})


def writer(files: dict[str, str]):
    """A ``write`` for write_folder: puts ``files`` (relative path -> text) in the folder."""

    def write(folder: Path) -> list[Path]:
        written = []
        for relative, text in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
        return written

    return write


def listing(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_a_new_folder_appears_with_a_manifest_listing_every_file_and_its_hash(tmp_path: Path) -> None:
    out = tmp_path / "out"
    written = write_folder(out, "--out", writer({"a.txt": "A", "sub/b.txt": "B"}), ScenarioError, PROVENANCE)
    assert written == [out / "a.txt", out / "sub/b.txt", out / MANIFEST]
    manifest = verify_folder(out)
    assert set(manifest["files"]) == {"a.txt", "sub/b.txt"} and manifest["complete"] is True
    assert manifest["files"]["a.txt"] == {"bytes": 1, "sha256": "559aead08264d5795d3909718cdd05abd49572e84fe55590eef31a88a08fdffd"}
    assert manifest["command"] == "test" and manifest["inputs"]["options"] == {"seed": 3}
    assert leftovers(tmp_path) == []


def test_a_second_write_replaces_the_previous_output_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_folder(out, "--out", writer({"old-only.txt": "x", "shared.txt": "old"}), ScenarioError, PROVENANCE)
    write_folder(out, "--out", writer({"shared.txt": "new", "new-only.txt": "y"}), ScenarioError, PROVENANCE)
    assert listing(out) == {"manifest.json": listing(out)["manifest.json"], "new-only.txt": "y", "shared.txt": "new"}
    verify_folder(out)
    assert leftovers(tmp_path) == []


def test_without_an_atomic_exchange_the_two_renames_still_leave_the_new_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outputs, "_rename_exchange", lambda first, second: False)
    out = tmp_path / "out"
    write_folder(out, "--out", writer({"a.txt": "old"}), ScenarioError, PROVENANCE)
    write_folder(out, "--out", writer({"a.txt": "new"}), ScenarioError, PROVENANCE)
    assert listing(out)["a.txt"] == "new" and leftovers(tmp_path) == []


def test_a_folder_holding_other_files_keeps_them_and_gets_the_new_output(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    write_folder(out, "--out", writer({"a.txt": "1", "stale.txt": "s"}), ScenarioError, PROVENANCE)
    write_folder(out, "--out", writer({"a.txt": "2"}), ScenarioError, PROVENANCE)
    files = listing(out)
    assert set(files) == {"notes.txt", "a.txt", MANIFEST}
    assert files["notes.txt"] == "the user's" and files["a.txt"] == "2"
    assert set(verify_folder(out)["files"]) == {"a.txt"}


def test_an_error_while_writing_leaves_the_previous_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_folder(out, "--out", writer({"a.txt": "old"}), ScenarioError, PROVENANCE)
    before = listing(out)

    def fails(folder: Path) -> list[Path]:
        (folder / "a.txt").write_text("half")
        raise ScenarioError("the report cannot be rendered")

    with pytest.raises(ScenarioError, match="cannot be rendered"):
        write_folder(out, "--out", fails, ScenarioError, PROVENANCE)
    assert listing(out) == before and leftovers(tmp_path) == []


def test_ctrl_c_while_writing_leaves_the_previous_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_folder(out, "--out", writer({"a.txt": "old"}), ScenarioError, PROVENANCE)
    before = listing(out)

    def interrupted(folder: Path) -> list[Path]:
        (folder / "a.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_folder(out, "--out", interrupted, ScenarioError, PROVENANCE)
    assert listing(out) == before and leftovers(tmp_path) == []


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
@needs_ctrl_c
def test_ctrl_c_while_moving_in_is_raised_once_everything_is_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = outputs._commit

    def commit_then_ctrl_c(target: Target, staging: Path) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # lands in the middle of the move
        commit(target, staging)

    monkeypatch.setattr(outputs, "_commit", commit_then_ctrl_c)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        write_folder(out, "--out", writer({"a.txt": "new"}), ScenarioError, PROVENANCE)
    assert listing(out)["a.txt"] == "new" and verify_folder(out)["complete"] is True


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
@needs_ctrl_c
def test_held_ctrl_c_restores_the_handler_and_raises_only_when_one_came() -> None:
    before = signal.getsignal(signal.SIGINT)
    with held_ctrl_c():
        pass
    assert signal.getsignal(signal.SIGINT) is before
    finished = False
    with pytest.raises(KeyboardInterrupt), held_ctrl_c():
        os.kill(os.getpid(), signal.SIGINT)
        finished = True
    assert finished and signal.getsignal(signal.SIGINT) is before


def test_a_read_only_folder_is_one_line_and_the_results_are_kept_elsewhere(read_only_folder: Path) -> None:
    out = read_only_folder / "out"
    with pytest.raises(ScenarioError) as caught:
        write_folder(out, "--out", writer({"a.txt": "A"}), ScenarioError, PROVENANCE)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"--out {out}: expected a writable place, got ")
    kept = Path(message.rsplit("the results were kept in ", 1)[1])
    assert listing(kept / "out")["a.txt"] == "A" and verify_folder(kept / "out")["complete"] is True


def test_a_writable_folder_of_the_users_inside_a_read_only_one_is_written_in_place(read_only_folder: Path) -> None:
    """``--out .`` where the working folder's parent is not writable: staged inside, not beside."""
    mine = read_only_folder / "mine"
    (mine / "notes.txt").write_text("the user's")
    write_folder(mine, "--out", writer({"a.txt": "A"}), ScenarioError, PROVENANCE)
    assert set(listing(mine)) == {"notes.txt", "a.txt", MANIFEST} and verify_folder(mine)["complete"] is True


def test_a_file_where_the_folder_belongs_is_refused_and_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("somebody's file")
    with pytest.raises(ScenarioError, match=rf"^--out {out}: expected a folder \(or a new path\), got a file; "
                                            r"the results were kept in \S+hetsim-kept-\S+$"):
        write_folder(out, "--out", writer({"a.txt": "A"}), ScenarioError, PROVENANCE)
    assert out.read_text() == "somebody's file" and leftovers(tmp_path) == []


def test_a_full_disk_is_one_line_and_the_results_are_kept_elsewhere(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def full_beside_the_target(folder: Path) -> list[Path]:
        if folder.parent == tmp_path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "a.txt"))
        return writer({"a.txt": "A"})(folder)

    with pytest.raises(ScenarioError) as caught:
        write_folder(out, "--out", full_beside_the_target, ScenarioError, PROVENANCE)
    message = str(caught.value)
    assert message.startswith(f"--out {out}: expected free space for the results, got No space left on device; "
                              "the results were kept in ")
    assert not out.exists() and leftovers(tmp_path) == []
    kept = Path(message.rsplit("kept in ", 1)[1])
    assert listing(kept / "out")["a.txt"] == "A"


def test_a_disk_full_everywhere_says_the_results_could_not_be_kept(tmp_path: Path) -> None:
    def always_full(folder: Path) -> list[Path]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(ScenarioError, match=r"got No space left on device; keeping the results in \S+ failed too "
                                            r"\(No space left on device\)$"):
        write_folder(tmp_path / "out", "--out", always_full, ScenarioError, PROVENANCE)


def test_a_single_file_is_replaced_whole_and_a_folder_in_its_place_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("old")
    assert write_file(path, "--out", lambda staged: staged.write_text("new"), ScenarioError) == path
    assert path.read_text() == "new" and leftovers(tmp_path) == []
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(ScenarioError, match=rf"^--out {folder}: expected a file \(or a new path\), got a folder; "):
        write_file(folder, "--out", lambda staged: staged.write_text("new"), ScenarioError)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_file_and_a_folder_are_moved_in_together(tmp_path: Path) -> None:
    targets = [Target(tmp_path / "report", "--report"), Target(tmp_path / "plans" / "plan.yaml", "--out", is_folder=False)]

    def write(staged: list[Path]) -> list[Path]:
        (staged[0] / "report.html").write_text("<html>")
        staged[1].write_text("pools: []")
        return [staged[1], staged[0] / "report.html"]

    written = write_outputs(targets, write, ScenarioError, PROVENANCE)
    assert written == [tmp_path / "plans/plan.yaml", tmp_path / "report/report.html", tmp_path / "report" / MANIFEST]
    assert (tmp_path / "plans/plan.yaml").read_text() == "pools: []" and "report.html" in verify_folder(tmp_path / "report")["files"]


def test_a_shared_folder_gets_its_files_and_no_manifest(tmp_path: Path) -> None:
    shared = tmp_path / "calibration"
    shared.mkdir()
    (shared / "other.yaml").write_text("kept")
    write_outputs([Target(shared, "--out", has_manifest=False)], lambda staged: writer({"h100.yaml": "x"})(staged[0]),
                  ScenarioError, PROVENANCE)  # fmt: skip
    assert listing(shared) == {"h100.yaml": "x", "other.yaml": "kept"}


def test_an_incomplete_output_is_marked_so_and_goes_beside_the_target(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    target = incomplete_path(out)
    write_folder(target, "--out", writer({"points.csv": "x"}), ScenarioError, Provenance("sweep", is_complete=False))
    assert target == tmp_path / "sweep.incomplete" and verify_folder(target)["complete"] is False


def test_the_inputs_hash_follows_file_content_and_options(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("a")
    first = inputs_digest({"fleet": fleet, "rate": 2.0})
    assert first == inputs_digest({"fleet": fleet, "rate": 2.0})
    assert first["files"]["fleet"]["sha256"] == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    assert inputs_digest({"fleet": fleet, "rate": 3.0})["sha256"] != first["sha256"]
    fleet.write_text("b")
    assert inputs_digest({"fleet": fleet, "rate": 2.0})["sha256"] != first["sha256"]


def test_a_tampered_output_fails_verification(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_folder(out, "--out", writer({"a.txt": "A"}), ScenarioError, PROVENANCE)
    (out / "a.txt").write_text("changed")
    with pytest.raises(ValueError, match=r"a\.txt: expected the file the manifest lists \(sha256 559aead08264\), got different content"):
        verify_folder(out)
    (out / MANIFEST).unlink()
    with pytest.raises(ValueError, match="expected a hetsim output manifest"):
        verify_folder(out)
