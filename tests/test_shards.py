"""ShardStore.collect with batches that cross shard boundaries and photos that failed: every shard holds
exactly its own rows, ids and failures, whatever the batch boundaries."""
import pytest
import torch

from fashrec.jobs.embed_stream import EmbeddedBatch
from fashrec.jobs.shards import ShardStore


@pytest.mark.parametrize("cuts", [[0, 3, 7, 8, 20, 23], [0, 23], [0, 1, 2, 9, 10, 11, 23]])
def test_shards_hold_their_own_rows_whatever_the_batch_boundaries(tmp_path, cuts):
    ids = [f"item-{i}" for i in range(23)]
    failed = {4, 5, 10, 22}  # one at a shard's start (10 with shard size 5), one at the very end
    vectors = {"overall": torch.arange(23 * 3, dtype=torch.float32).reshape(23, 3),
               "colour": -torch.arange(23 * 2, dtype=torch.float32).reshape(23, 2)}

    def batches():
        for lo, hi in zip(cuts, cuts[1:]):
            positions = list(range(lo, hi))
            kept = [p for p in positions if p not in failed]
            yield EmbeddedBatch(positions, kept, {f: v[kept] for f, v in vectors.items()},
                                [(p, f"broken {p}") for p in positions if p in failed])

    store = ShardStore(tmp_path, ids, shard_size=5, dims={"overall": 3, "colour": 2})
    written = []
    store.collect(batches(), on_shard=written.append)
    assert sorted(written) == [0, 1, 2, 3, 4] and store.todo() == []
    kept, got, failures = store.load_all()
    want = [p for p in range(23) if p not in failed]
    assert kept == want
    assert failures == [(p, f"broken {p}") for p in sorted(failed)]
    for focus, v in vectors.items():
        torch.testing.assert_close(got[focus], v[want], rtol=0, atol=0)
