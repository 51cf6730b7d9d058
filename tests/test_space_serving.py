"""The Space serves exactly the catalogue's photos, however the index was updated.

A copy of the committed index gets photos added from a folder elsewhere and from a folder inside the
checkout (once, that made the Space serve the whole checkout: its photo folders widened to their common
parent), one replaced and one removed. The folder then holds exactly the catalogue's photos, and the real
Space (``python space/app.py``) serves every one of them and nothing else: ``/gradio_api/file=`` requests
for the repository's git config, source files, checkpoints, the photos' own source paths, the index's other
files and ``/etc/passwd`` are 403, through raw HTTP and through gradio_client's own file downloader.
"""
from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

import fashrec
from fashrec.cli import main
from fashrec.index.integrity import folder_files

REPO_ROOT = Path(__file__).resolve().parents[1]
HM = REPO_ROOT.parent / "shared" / "data" / "hm" / "images"

pytestmark = pytest.mark.slow


def photos_from(folder: Path, sources: list[Path], names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True)
    for n, source in enumerate(sources):
        shutil.copy(source, folder / f"{names[n] if names else source.stem}.jpg")
    return folder


@pytest.fixture(scope="module")
def updated(tmp_path_factory):
    """space/index, updated from a folder outside the checkout and from one inside it."""
    if not HM.is_dir():
        pytest.skip("needs the shared H&M photos (photos that are not in the sample)")
    root = tmp_path_factory.mktemp("serving")
    index = Path(shutil.copytree(REPO_ROOT / "space" / "index", root / "index"))
    shipped = fashrec.open_index(index).index.ids
    fresh = [p for p in sorted(HM.rglob("*.jpg")) if p.stem not in set(shipped)]
    inside = REPO_ROOT / "scratch" / f"test-photos-{uuid.uuid4().hex[:8]}"  # /scratch/ is git-ignored
    try:
        elsewhere = photos_from(root / "elsewhere", fresh[:2])
        photos_from(inside, fresh[2:4])
        reshot = photos_from(root / "reshot", [fresh[10]], names=[shipped[3]])
        (root / "gone.txt").write_text(f"{shipped[5]}\n{fresh[1].stem}\n")
        for argv in (["index", "add", "--index", str(index), "--data", str(elsewhere)],
                     ["index", "add", "--index", str(index), "--data", str(inside)],
                     ["index", "replace", "--index", str(index), "--data", str(reshot)],
                     ["index", "remove", "--index", str(index), "--ids", str(root / "gone.txt")]):
            assert main(argv) == 0, argv
        sources = [elsewhere / f"{fresh[0].stem}.jpg", inside / f"{fresh[2].stem}.jpg", reshot / f"{shipped[3]}.jpg"]
        yield index, sources
    finally:
        shutil.rmtree(inside, ignore_errors=True)


def test_the_folder_holds_exactly_the_catalogue_photos_after_updates(updated):
    index, _ = updated
    opened = fashrec.open_index(index)
    served = {index / f for f in folder_files(index) if f.startswith("photos/")}
    assert served == set(opened.photos.values())
    assert len(opened.index) == 800 + 4 - 2
    assert all(p.is_relative_to(index / "photos") for p in opened.photos.values())


def test_the_space_serves_every_catalogue_photo_and_nothing_else(updated, tmp_path):
    from gradio_client import Client

    from space.local_server import running_space

    index, sources = updated
    opened = fashrec.open_index(index)
    git_config = Path(subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=REPO_ROOT, check=True,
                                     capture_output=True, text=True).stdout.strip())
    refused = ["/etc/passwd", str((REPO_ROOT / git_config / "config").resolve()), str(REPO_ROOT / "space" / "app.py"),
               str(REPO_ROOT / "fashrec" / "index" / "folder.py"),
               str(REPO_ROOT / "fashrec" / "checkpoints" / "multitask-cnn" / "model.safetensors"),
               *[str(s) for s in sources if s.exists()],
               str(index / "catalogue.json"), str(index / "integrity.json"), str(index / "photos"),
               str(index / "photos" / ".." / "index.json")]
    with running_space(env={"FASHREC_INDEX": str(index), "FASHREC_RECON_MODEL": "none"}, log=tmp_path / "app.log") as url:
        for path in refused:  # raw HTTP, as any client could ask
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=30)
            assert err.value.code == 403, path
        for item, photo in opened.photos.items():
            with urllib.request.urlopen(f"{url}gradio_api/file={photo}", timeout=30) as response:
                assert response.status == 200 and response.read() == photo.read_bytes(), item

        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        endpoint = client.endpoints[client._infer_fn_index("/recommend_item", None)]
        for path in refused:  # gradio_client's own downloader, given a server path
            with pytest.raises(Exception, match="403"):
                endpoint._download_file({"path": path})
        added = sources[1].stem  # a photo added from inside the checkout
        similar, design = client.predict(article_id=added, k=6, api_name="/recommend_item")
        assert len(similar) == len(design) == 6
        for tile in similar + design:  # each result's photo is the catalogue's photo of that id
            item = tile["caption"].splitlines()[-1].split(" · ")[0]
            assert Path(tile["image"]).read_bytes() == opened.photos[item].read_bytes()
