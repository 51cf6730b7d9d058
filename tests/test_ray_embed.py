"""``fashrec embed --engine ray``: a local Ray (2 CPUs, 127.0.0.1, no dashboard) embeds the sample into the
same ids and vectors as the single-process job; an unreachable cluster is one line naming its address."""
import socket

import numpy as np
import pytest

import fashrec
from fashrec.cli import main
from fashrec.jobs.embed_job import embed_catalogue
from fashrec.index import SimilarityIndex
from tests.conftest import REPO_ROOT

ray = pytest.importorskip("ray", reason="needs the 'ray' extra: pip install 'fashrec[ray]'")

N = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_cluster_is_one_line_naming_it(untrained_ae_dir, tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["embed", "--model", str(untrained_ae_dir), "--data", "sample", "--n", "4", "--out",
                 str(tmp_path / "idx"), "--engine", "ray", "--address", address]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at {address}" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})  # the workers import this checkout
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_embeds_the_sample_like_the_single_process_job(local_ray, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = fashrec.MultiTaskCNN(classes={"product_type_name": ["a", "b"], "colour_group_name": ["c", "d"],
                                          "graphical_appearance_name": ["e", "f"]}, widths=(4, 8, 8, 8), head_dim=8)
    options = dict(model=model.eval(), data="sample", n=N, batch_size=8, shard_size=16, progress=False)
    local = embed_catalogue(out=tmp_path / "local", **options)
    distributed = embed_catalogue(out=tmp_path / "ray", engine="ray", **options)
    assert distributed.ids == local.ids and len(local) == N
    assert distributed.focuses == local.focuses
    for focus in local.focuses:
        np.testing.assert_allclose(distributed.embeddings(focus), local.embeddings(focus), rtol=1e-5, atol=1e-6)
    on_disk = SimilarityIndex.load(tmp_path / "ray", model=model)  # the same format, the same model record
    assert on_disk.ids == local.ids
    assert (tmp_path / "ray" / "catalogue.json").read_text() == (tmp_path / "local" / "catalogue.json").read_text()
