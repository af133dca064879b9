"""``kdnlu data``: fetching GLUE from a loopback HTTP server, local archives and folders, with
verification against a manifest; truncated and altered archives are refused, leave nothing
behind and never touch a verified copy."""

from __future__ import annotations

import http.server
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import FULL_GLUE, GLUE_SAMPLE, REPO, run_python
from kdnlu import cli
from kdnlu.errors import DataError, KdnluError
from kdnlu.glue_data import manifest
from kdnlu.glue_data.fetch import Origin, fetch_task
from kdnlu.glue_data.manifest import MRPC_SOURCES, FileCheck, TaskFiles, zipped
from kdnlu.glue_data.mrpc import build_mrpc
from kdnlu.glue_data.verify import check_task, count_and_digest


def sample_task(folder: str, key: str, sources=None) -> TaskFiles:
    """The manifest entry of a task folder of the GLUE sample, with its files' real digests."""
    files = {}
    for path in sorted((GLUE_SAMPLE / folder).glob("*.tsv")):
        lines, sha256, size = count_and_digest(path)
        files[path.name] = FileCheck(lines - 1, sha256, size)
    return TaskFiles(folder, key, files, sources or zipped(f"{folder}.zip"))


RTE = sample_task("RTE", "rte")
MRPC = sample_task("MRPC", "mrpc", MRPC_SOURCES)
SAMPLE_MANIFEST = {"RTE": RTE, "MRPC": MRPC}


def zip_folder(folder: Path, out: Path, arcname: str | None = None) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.glob("*.tsv")):
            zf.write(path, f"{arcname or folder.name}/{path.name}")
    return out


def altered_copy(folder: Path, tmp: Path) -> Path:
    """The task folder with one letter of train.tsv changed: same rows and size, other bytes."""
    out = tmp / "altered" / folder.name
    shutil.copytree(folder, out)
    data = bytearray((out / "train.tsv").read_bytes())
    at = data.index(b"e", data.index(b"\n"))
    data[at : at + 1] = b"a"
    (out / "train.tsv").write_bytes(bytes(data))
    return out


class Mirror:
    """A loopback HTTP server over a folder; ``cut[name] = n`` sends only n bytes of a file
    while announcing its full length, as a dropped connection does."""

    def __init__(self, root: Path) -> None:
        self.root, self.cut, self.requests = root, {}, []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                name = self.path.lstrip("/")
                mirror.requests.append(name)
                path = mirror.root / name
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: mirror.cut.get(name, len(body))])
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Mirror:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    root = tmp_path / "mirror"
    root.mkdir()
    zip_folder(GLUE_SAMPLE / "RTE", root / "RTE.zip")
    zip_folder(GLUE_SAMPLE / "MRPC", root / "MRPC.zip")
    with Mirror(root) as server:
        yield server


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_fetch_from_a_mirror_installs_verified_folders_and_skips_them_next_time(
    mirror: Mirror, tmp_path: Path
) -> None:
    to, origin = tmp_path / "glue", Origin(mirror.url, progress=False)
    for task in (RTE, MRPC):
        to.mkdir(exist_ok=True)
        assert fetch_task(task, to, origin) == (
            "installed",
            f"from {mirror.url} ({task.folder}.zip)",
        )
        assert same_files(to / task.folder, GLUE_SAMPLE / task.folder)
        assert check_task(to / task.folder, task).status == "complete"
    assert mirror.requests == ["RTE.zip", "MRPC.zip"]
    assert fetch_task(RTE, to, origin) == ("skipped", "already complete and verified")
    assert mirror.requests == ["RTE.zip", "MRPC.zip"]  # nothing downloaded again
    assert leftovers(to) == []


def test_a_truncated_download_is_refused_and_the_verified_copy_stays(
    mirror: Mirror, tmp_path: Path
) -> None:
    to, origin = tmp_path / "glue", Origin(mirror.url, progress=False)
    to.mkdir()
    fetch_task(RTE, to, origin)
    size = (mirror.root / "RTE.zip").stat().st_size
    mirror.cut["RTE.zip"] = size // 2
    with pytest.raises(DataError) as err:
        fetch_task(RTE, to, origin, force=True)
    assert str(err.value).startswith(f"download of {mirror.url}RTE.zip stopped after ")
    assert str(err.value).endswith(
        "nothing was installed from it: run the command again (or use --from with a local copy)"
    )
    assert same_files(to / "RTE", GLUE_SAMPLE / "RTE")
    assert leftovers(to) == []


def test_a_truncated_download_into_an_empty_folder_leaves_nothing(
    mirror: Mirror, tmp_path: Path
) -> None:
    to = tmp_path / "glue"
    to.mkdir()
    mirror.cut["RTE.zip"] = 1000
    with pytest.raises(DataError, match="stopped after"):
        fetch_task(RTE, to, Origin(mirror.url, progress=False))
    assert list(to.iterdir()) == []


def test_an_archive_whose_files_differ_from_the_manifest_is_refused(
    mirror: Mirror, tmp_path: Path
) -> None:
    to, origin = tmp_path / "glue", Origin(mirror.url, progress=False)
    to.mkdir()
    fetch_task(RTE, to, origin)
    zip_folder(altered_copy(GLUE_SAMPLE / "RTE", tmp_path), mirror.root / "RTE.zip")
    with pytest.raises(DataError) as err:
        fetch_task(RTE, to, origin, force=True)
    _, actual, _ = count_and_digest(tmp_path / "altered" / "RTE" / "train.tsv")
    expected = RTE.files["train.tsv"].sha256
    assert str(err.value) == (
        f"RTE from {mirror.url} (RTE.zip) does not match the GLUE files kdnlu knows "
        f"(train.tsv: SHA-256 {actual[:16]}..., expected {expected[:16]}... (the contents "
        f"differ)); {to / 'RTE'} is untouched. Use an unmodified copy of the official files"
    )
    assert same_files(to / "RTE", GLUE_SAMPLE / "RTE")
    assert leftovers(to) == []


def test_a_damaged_zip_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    whole = zip_folder(GLUE_SAMPLE / "RTE", tmp_path / "whole.zip").read_bytes()
    (archives / "RTE.zip").write_bytes(whole[: len(whole) // 2])  # a copy cut short on disk
    to = tmp_path / "glue"
    to.mkdir()
    with pytest.raises(DataError, match=r"^archive RTE.zip is damaged \("):
        fetch_task(RTE, to, Origin(str(archives)))
    assert list(to.iterdir()) == []


def test_a_task_missing_from_the_origin_says_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "glue").mkdir()
    with pytest.raises(DataError) as err:
        fetch_task(RTE, tmp_path / "glue", Origin(str(tmp_path / "empty")))
    assert str(err.value) == (
        f"RTE: {tmp_path / 'empty'} has none of its files (looked for RTE.zip, or a folder RTE/ "
        "in the GLUE layout)"
    )


def test_from_a_glue_folder_a_single_archive_and_a_tarball(tmp_path: Path) -> None:
    for origin in (
        str(GLUE_SAMPLE),
        str(zip_folder(GLUE_SAMPLE / "MRPC", tmp_path / "glue_data.zip", "glue_data/MRPC")),
    ):
        to = tmp_path / "out" / Path(origin).name
        to.mkdir(parents=True)
        assert fetch_task(MRPC, to, Origin(origin))[0] == "installed"
        assert same_files(to / "MRPC", GLUE_SAMPLE / "MRPC")
    tarball = tmp_path / "rte.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(GLUE_SAMPLE / "RTE", "RTE", filter=lambda m: None if "README" in m.name else m)
    to = tmp_path / "out" / "tar"
    to.mkdir()
    assert fetch_task(RTE, to, Origin(str(tarball))) == ("installed", f"from {tarball}")
    assert same_files(to / "RTE", GLUE_SAMPLE / "RTE")


def senteval_files(folder: Path) -> tuple[Path, Path, Path]:
    """The sample's MRPC as SentEval publishes the corpus: train and dev pairs in one file
    (interleaved), the test pairs with a label column, and GLUE's list of dev pair ids."""
    train = (GLUE_SAMPLE / "MRPC" / "train.tsv").read_text(encoding="utf-8").splitlines()
    dev = (GLUE_SAMPLE / "MRPC" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    mixed = [train[0]]
    for i in range(1, len(train)):
        mixed.append(train[i])
        if i < len(dev):
            mixed.append(dev[i])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "msr_paraphrase_train.txt").write_text("\r\n".join(mixed) + "\r\n", "utf-8")
    test = (GLUE_SAMPLE / "MRPC" / "test.tsv").read_text(encoding="utf-8").splitlines()
    rows = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    rows += ["1\t" + line.split("\t", 1)[1] for line in test[1:]]
    (folder / "msr_paraphrase_test.txt").write_text("\n".join(rows) + "\n", "utf-8")
    ids = ["\t".join(line.split("\t")[1:3]) for line in dev[1:]]
    (folder / "mrpc_dev_ids.tsv").write_text("\n".join(ids) + "\n", "utf-8")
    return (
        folder / "msr_paraphrase_train.txt",
        folder / "msr_paraphrase_test.txt",
        folder / "mrpc_dev_ids.tsv",
    )


def test_mrpc_is_built_from_the_senteval_files_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "MRPC"
    out.mkdir()
    build_mrpc(*senteval_files(tmp_path / "senteval"), out)
    assert same_files(out, GLUE_SAMPLE / "MRPC")


def test_mrpc_from_a_mirror_without_an_archive_uses_the_senteval_files(
    mirror: Mirror, tmp_path: Path
) -> None:
    (mirror.root / "MRPC.zip").unlink()
    senteval_files(mirror.root)
    to = tmp_path / "glue"
    to.mkdir()
    outcome = fetch_task(MRPC, to, Origin(mirror.url, progress=False))
    assert outcome == (
        "installed",
        f"from {mirror.url} (msr_paraphrase_train.txt + msr_paraphrase_test.txt + "
        "mrpc_dev_ids.tsv)",
    )
    assert mirror.requests == [
        "MRPC.zip",
        "msr_paraphrase_train.txt",
        "msr_paraphrase_test.txt",
        "mrpc_dev_ids.tsv",
    ]
    assert same_files(to / "MRPC", GLUE_SAMPLE / "MRPC")


def test_leftovers_of_a_killed_fetch_are_cleared_on_the_next_run(tmp_path: Path) -> None:
    to = tmp_path / "glue"
    (to / ".RTE.abc123.staging").mkdir(parents=True)
    (to / ".RTE.abc123.staging" / "train.tsv").write_text("half")
    assert fetch_task(RTE, to, Origin(str(GLUE_SAMPLE)))[0] == "installed"
    assert leftovers(to) == []


def test_the_commands_fetch_check_and_report(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(manifest, "GLUE", SAMPLE_MANIFEST)
    to = tmp_path / "data" / "glue"
    assert cli.main(["data", "glue", "--from", mirror.url, "--to", str(to), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"GLUE into {to} (from --to), files from {mirror.url}:\n"
        f"  RTE    installed: from {mirror.url} (RTE.zip)\n"
        f"  MRPC   installed: from {mirror.url} (MRPC.zip)\n"
        f"recipes without data_root find this copy with KDNLU_DATA={to.parent}\n"
    )
    lines = (to / "RTE" / "train.tsv").read_text(encoding="utf-8").split("\n")
    (to / "RTE" / "train.tsv").write_text("\n".join(lines[:-5]), encoding="utf-8")
    assert cli.main(["data", "check", str(to)]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1:] == [
        f"  RTE    damaged   train.tsv: {RTE.files['train.tsv'].rows - 4} rows, expected "
        f"{RTE.files['train.tsv'].rows}",
        "  MRPC   complete  rows dev.tsv 100, test.tsv 100, train.tsv 300; digests match",
    ]
    assert captured.err == (
        "error: 1 task(s) not complete: rte. `kdnlu data glue --tasks rte --force` fetches "
        "them again\n"
    )
    assert cli.main(["data", "glue", "--from", mirror.url, "--to", str(to), "--quiet"]) == 0
    assert "  RTE    installed" in capsys.readouterr().out  # a damaged copy is replaced
    assert cli.main(["data", "check", str(to)]) == 0


def test_the_default_destination_is_the_data_location_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(manifest, "GLUE", SAMPLE_MANIFEST)
    monkeypatch.setenv("KDNLU_DATA", str(tmp_path / "kd"))
    assert cli.main(["data", "glue", "--from", str(GLUE_SAMPLE), "--tasks", "rte"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"GLUE into {tmp_path / 'kd' / 'glue'} (from KDNLU_DATA={tmp_path / 'kd'}), files from "
        f"{GLUE_SAMPLE}:"
    )
    assert same_files(tmp_path / "kd" / "glue" / "RTE", GLUE_SAMPLE / "RTE")


def test_a_second_fetch_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    import os

    from kdnlu.glue_data.fetch import fetch_glue
    from kdnlu.lock import lock_folder

    to = tmp_path / "glue"
    with lock_folder(to, "GLUE folder"), pytest.raises(KdnluError) as err:
        fetch_glue([RTE], to, Origin(str(GLUE_SAMPLE)), report=lambda line: None)
    assert str(err.value) == (
        f"{to} is being written by another process (pid {os.getpid()}); a GLUE folder has one "
        "writer at a time. Wait for that process to end (or stop it), then run this again"
    )
    assert fetch_glue([RTE], to, Origin(str(GLUE_SAMPLE)), report=lambda line: None) == []
    assert leftovers(to) == []


def test_unknown_task_and_bad_origin_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["data", "glue", "--tasks", "rtee", "--to", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "error: unknown GLUE task 'rtee'; the tasks are: cola, sst2, mrpc, stsb, qqp, mnli, "
        "qnli, rte, wnli, ax\n"
    )
    assert cli.main(["data", "glue", "--from", str(tmp_path / "nope"), "--to", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: --from {tmp_path / 'nope'}: no such file or folder (nor an http(s):// URL)\n"
    )


def test_the_packaged_manifest_covers_every_glue_task_kdnlu_reads() -> None:
    from kdnlu import discovery
    from kdnlu.registry import TASKS

    discovery.load_all()
    for task in manifest.GLUE.values():
        glue_task = TASKS.get(task.key).build(data_root=str(GLUE_SAMPLE))
        assert sorted(f"{split}.tsv" for split in glue_task.files) == sorted(task.files)


@pytest.mark.full_data
def test_full_glue_from_archives_then_a_shipped_recipe_finds_it(tmp_path: Path) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    tasks = ["CoLA", "SST-2", "MRPC", "STS-B", "RTE", "WNLI"]
    for folder in tasks:
        zip_folder(FULL_GLUE.path / folder, archives / f"{folder}.zip")
    env = {"KDNLU_DATA": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    fetched = run_python(
        ["-m", "kdnlu.cli", "data", "glue", "--from", str(archives), "--quiet", "--tasks", *tasks],
        cwd=tmp_path,
        **env,
    )
    assert fetched.returncode == 0, fetched.stderr
    for folder in tasks:
        assert same_files(tmp_path / "data" / "glue" / folder, FULL_GLUE.path / folder)
    dry = run_python(
        ["-m", "kdnlu.cli", "check", str(REPO / "recipes" / "mtdnn_small.yaml")],
        cwd=tmp_path,
        **env,
    )
    assert dry.returncode == 0, dry.stderr
    assert "  rte: 2490 train / 277 dev rows" in dry.stdout
