"""pytest plugin for mutation runs only (tools/mutation.py passes ``-p tools.mutmut_pytest_plugin``).

mutmut forks one child per mutant from a process that already ran the tests. tqdm guards its bars with a
multiprocessing semaphore, which forked children share: a child that ends (or is killed) while holding
it, e.g. a mutant that turns a progress bar on, leaves it taken, and every later child that makes a bar
waits forever. A per-process lock and no monitor thread remove that artefact of the fork; the code under
test is unchanged.
"""
import threading

from tqdm import tqdm

tqdm.monitor_interval = 0
tqdm.set_lock(threading.RLock())
